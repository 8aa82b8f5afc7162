//! The time limit of one rule call: the CPU time the calling thread spends
//! in it, checked at every tick of the engine's epoch.
//!
//! Why CPU time rather than wall-clock time: a rule is pure and has nothing
//! to wait on, so the CPU time a call uses is the work the rule does.
//! Wall-clock time also counts every moment the machine gave the core to
//! something else, or the host spent blocked on its own log output: on a
//! busy host (a CI runner, a node packed with services) a rule doing 5 ms of
//! work was failed at 100 ms, and its fallback applied through no fault of
//! its own. The epoch ticker still wakes the check at every tick, so a rule
//! that loops is stopped within a tick of having used its limit.

use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::runtime::TICK;
use super::sandbox::Sandbox;

/// Sets `store` to interrupt the call it runs once the calling thread has
/// spent `limit` of CPU time in it. Call it just before the call, on the
/// thread that makes it: the store is used for one call, on one thread.
pub(crate) fn arm(store: &mut Store<Sandbox>, limit: Duration) {
    // CPU time never runs ahead of wall-clock time on one thread, so the
    // first check can wait for the whole limit to pass on the clock.
    store.set_epoch_deadline(ticks(limit) + 1);
    let Some(started) = thread_cpu_time() else {
        // No CPU clock here: the limit stays a wall-clock one, the default
        // behaviour of a deadline without a callback.
        return;
    };
    store.epoch_deadline_callback(move |_| {
        let Some(now) = thread_cpu_time() else {
            return Ok(UpdateDeadline::Interrupt);
        };
        let used = now.saturating_sub(started);
        Ok(match limit.checked_sub(used) {
            Some(left) if !left.is_zero() => UpdateDeadline::Continue(ticks(left)),
            _ => UpdateDeadline::Interrupt,
        })
    });
}

/// `d` in epoch ticks, rounded up and at least one.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos().div_ceil(TICK.as_nanos()) as u64).max(1)
}

/// The CPU time (user and system) the calling thread has used so far.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`, the only memory
    // `clock_gettime` writes.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// No per-thread CPU clock on this platform.
#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_are_never_zero() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_nanos(1)), 1);
        assert_eq!(ticks(TICK), 1);
        assert_eq!(ticks(TICK + Duration::from_nanos(1)), 2);
        assert_eq!(ticks(Duration::from_millis(100)), 20);
    }

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let start = thread_cpu_time().expect("a thread CPU clock");
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap() - start;
        assert!(slept < Duration::from_millis(50), "sleeping used {slept:?}");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let worked = thread_cpu_time().unwrap() - start - slept;
        assert!(worked > Duration::ZERO, "spinning used {worked:?}");
    }
}
