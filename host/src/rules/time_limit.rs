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
//!
//! Why the CPU clock is first read at the first tick, not when the call
//! begins: reading it is a system call of about a microsecond, as much as a
//! tenth of a whole call of a Rust rule, and nearly every call is over
//! before the next tick. The time before the first check is counted as
//! wall-clock time, at most one tick of it (see [`Meter`]).

use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use super::runtime::TICK;
use super::sandbox::Sandbox;

/// Sets `store` to interrupt the call it runs once the calling thread has
/// spent `limit` of CPU time in it. Call it just before the call, on the
/// thread that makes it: the store is used for one call, on one thread.
pub(crate) fn arm(store: &mut Store<Sandbox>, limit: Duration) {
    let started = Instant::now();
    let mut meter = Meter::new(limit);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let elapsed = started.elapsed();
        // Without a CPU clock the limit is a wall-clock one.
        let cpu = thread_cpu_time().unwrap_or(elapsed);
        Ok(match meter.check(cpu, elapsed) {
            Some(ticks) => UpdateDeadline::Continue(ticks),
            None => UpdateDeadline::Interrupt,
        })
    });
}

/// What one call has used of its limit, as its checks see it.
///
/// The first check takes the thread's CPU clock as its baseline, and
/// counts what came before it as the wall-clock time since the call began,
/// but at most one tick: never less than the CPU time spent (CPU time does
/// not run ahead of wall-clock time on one thread) unless the tick came
/// late, and never a long wait for a core before the first tick. So a call
/// is never stopped before its limit has passed on the clock, and a call
/// that was kept waiting is not charged for the wait.
struct Meter {
    limit: Duration,
    /// The CPU clock at the first check, and the time counted before it.
    first: Option<(Duration, Duration)>,
}

impl Meter {
    fn new(limit: Duration) -> Self {
        Self { limit, first: None }
    }

    /// A check, given the thread's CPU clock `cpu` and the wall-clock time
    /// `elapsed` since the call began: the ticks until the next check, or
    /// `None` once the limit is used up.
    fn check(&mut self, cpu: Duration, elapsed: Duration) -> Option<u64> {
        let (baseline, before) = *self.first.get_or_insert((cpu, elapsed.min(TICK)));
        let used = before + cpu.saturating_sub(baseline);
        self.limit
            .checked_sub(used)
            .filter(|left| !left.is_zero())
            .map(ticks)
    }
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

    const MS: Duration = Duration::from_millis(1);
    const LIMIT: Duration = Duration::from_millis(100);

    #[test]
    fn ticks_round_up_and_are_never_zero() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_nanos(1)), 1);
        assert_eq!(ticks(TICK), 1);
        assert_eq!(ticks(TICK + Duration::from_nanos(1)), 2);
        assert_eq!(ticks(LIMIT), 20);
    }

    #[test]
    fn a_call_that_spins_is_stopped_once_it_has_used_its_limit() {
        let mut m = Meter::new(LIMIT);
        // First check 2 ms in, the CPU clock at 50 ms (earlier work of
        // the thread): 2 ms counted, 98 ms left.
        assert_eq!(m.check(50 * MS, 2 * MS), Some(20));
        assert_eq!(m.check(140 * MS, 92 * MS), Some(2));
        assert_eq!(m.check(148 * MS, 100 * MS), None);
    }

    #[test]
    fn a_call_kept_waiting_is_charged_for_its_work_only() {
        let mut m = Meter::new(LIMIT);
        // The first tick came 300 ms in: one tick of it is counted.
        assert_eq!(m.check(10 * MS, 300 * MS), Some(19));
        // 2 s on the clock, 20 ms of work since: 25 ms used.
        assert_eq!(m.check(30 * MS, 2000 * MS), Some(15));
        assert_eq!(m.check(105 * MS, 2100 * MS), None);
    }

    #[test]
    fn a_call_is_never_stopped_before_its_limit_passes_on_the_clock() {
        // A limit under one tick, and a first tick at once: the call goes
        // on until its limit has passed, however the CPU clock reads.
        let limit = 3 * MS;
        let mut m = Meter::new(limit);
        assert_eq!(m.check(7 * MS, Duration::from_micros(1)), Some(1));
        assert_eq!(m.check(10 * MS, 3 * MS), None);
        // Nor stopped with work left: a late first tick counts one tick.
        let mut m = Meter::new(LIMIT);
        assert!(m.check(Duration::ZERO, 99 * MS).is_some());
    }

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let start = thread_cpu_time().expect("a thread CPU clock");
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap() - start;
        assert!(slept < Duration::from_millis(50), "sleeping used {slept:?}");
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let worked = thread_cpu_time().unwrap() - start - slept;
        assert!(worked > Duration::ZERO, "spinning used {worked:?}");
    }
}
