//! What a `#![no_std]` rule component needs from its language runtime: an
//! allocator and a panic handler. Only compiled for Wasm without `std`.
//!
//! The host runs every call in a fresh instance, so memory never needs to be
//! given back: a bump allocator is the fastest there is, and the host's
//! memory limit bounds what one call can take.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;

const PAGE: usize = 65536;
/// The smallest step memory grows by, in pages.
const GROW_PAGES: usize = 8;

// SAFETY: the linker defines `__heap_base` for every wasm32 module; only
// its address is taken, never its value.
unsafe extern "C" {
    /// Where the linker put the end of static data and the stack: the heap
    /// starts here.
    static __heap_base: u8;
}

struct Bump {
    /// Next free byte; 0 until the first allocation.
    next: Cell<usize>,
    /// End of the memory grown so far.
    end: Cell<usize>,
}

// SAFETY: the `Cell`s are never shared between threads: a Wasm instance
// without threads runs on one thread only, and this module is built only
// for such a target.
unsafe impl Sync for Bump {}

#[global_allocator]
static ALLOC: Bump = Bump {
    next: Cell::new(0),
    end: Cell::new(0),
};

// SAFETY: every block handed out is aligned as asked, lies inside memory
// grown for it, and overlaps no other live block, since `next` only moves
// past it (or back over the most recent block, once it is freed).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.next.get() == 0 {
            self.next.set(&raw const __heap_base as usize);
            self.end.set(wasm32::memory_size(0) * PAGE);
        }
        let start = (self.next.get() + layout.align() - 1) & !(layout.align() - 1);
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if end > self.end.get() {
            // Grow in steps of at least half a MiB: every grow is a call out
            // of Wasm and a system call in the host.
            let pages = (end - self.end.get()).div_ceil(PAGE).max(GROW_PAGES);
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            self.end.set(self.end.get() + pages * PAGE);
        }
        self.next.set(end);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be taken back; the rest is
        // reclaimed when the call's instance goes away.
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing the most recent allocation (a string being formatted, a
        // vector being pushed to) happens in place.
        if ptr as usize + layout.size() == self.next.get() {
            let end = ptr as usize + new_size;
            if end <= self.end.get() {
                self.next.set(end);
                return ptr;
            }
        }
        // SAFETY: `layout.align()` is a valid alignment (it came from a
        // valid layout), and `new_size` rounded up to it does not overflow,
        // which `realloc`'s contract guarantees.
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: `ptr` is valid for `layout.size()` bytes, `new` for
            // `new_size`, and a fresh block never overlaps a live one.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // The host reports the trap as the rule's failure and applies its
    // fallback; there is nowhere to print the message to.
    wasm32::unreachable()
}

// Without `std` there is no C library, and compiler-generated code still
// calls these two for slice and string comparisons. (Copies and fills
// compile to bulk-memory instructions and need no function.)

/// C's `memcmp`: compares `n` bytes.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // Eight bytes at a time while they are equal (column names are compared
    // a lot), then byte by byte to find the first difference.
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, and the caller guarantees both pointers are
        // valid for `n` bytes; the reads are unaligned reads.
        let (x, y) = unsafe {
            (
                (a.add(i) as *const u64).read_unaligned(),
                (b.add(i) as *const u64).read_unaligned(),
            )
        };
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`, and both pointers are valid for `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// C's `bcmp`: whether `n` bytes differ.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract as `memcmp`, passed on.
    unsafe { memcmp(a, b, n) }
}

/// The component model's allocation entry point: the host calls it to place
/// the commit's buffers in the rule's memory. (With `std`, the C library
/// provides it.)
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a power-of-two `align` and, when
    // `old_len` is not zero, a block it got from this function with that
    // size and alignment.
    let ptr = unsafe {
        if old_len == 0 {
            ALLOC.alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            ALLOC.realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        wasm32::unreachable();
    }
    ptr
}
