//! Parking a thread that is not a vCPU (`block_on`, `join`, `scope`): spin first,
//! then park. With a runtime attached, each park and each unpark that hits a parked
//! thread is counted as an exit.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::sched::Shared;

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

/// A one-thread wake-up flag; its `Waker` form is what `block_on` polls with.
pub(crate) struct Signal {
    state: AtomicU8,
    thread: Thread,
    rt: Option<Arc<Shared>>,
}

impl Signal {
    /// A signal for the calling thread, counting into `rt` if given.
    pub(crate) fn new(rt: Option<Arc<Shared>>) -> Arc<Self> {
        Arc::new(Self { state: AtomicU8::new(EMPTY), thread: thread::current(), rt })
    }

    /// Wakes the waiting thread (or makes its next wait return at once).
    pub(crate) fn notify(&self) {
        if self.state.swap(NOTIFIED, AcqRel) == PARKED {
            self.thread.unpark();
            if let Some(rt) = &self.rt {
                rt.shard().add(|s| &s.unparks, 1);
            }
        }
    }

    fn take(&self) -> bool {
        self.state.load(Acquire) == NOTIFIED && self.state.swap(EMPTY, AcqRel) == NOTIFIED
    }

    /// Waits for a notify (or a spurious wake, or `timeout`): spins for `spin`, then
    /// parks. Only the thread that created the signal may wait on it.
    pub(crate) fn wait(&self, spin: Duration, timeout: Option<Duration>) {
        if self.take() {
            return;
        }
        if !spin.is_zero() {
            let end = Instant::now() + spin;
            loop {
                for _ in 0..64 {
                    if self.take() {
                        return;
                    }
                    std::hint::spin_loop();
                }
                if Instant::now() >= end {
                    break;
                }
            }
        }
        if self.state.compare_exchange(EMPTY, PARKED, AcqRel, Acquire).is_err() {
            self.state.store(EMPTY, Release); // it was NOTIFIED
            return;
        }
        if let Some(rt) = &self.rt {
            rt.shard().add(|s| &s.parks, 1);
        }
        match timeout {
            Some(t) => thread::park_timeout(t),
            None => thread::park(),
        }
        // Notified, timed out or spurious: the caller re-checks its condition anyway.
        self.state.swap(EMPTY, AcqRel);
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.notify();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notify();
    }
}

/// Runs `fut` on this thread, outside any runtime (parks are not counted).
pub(crate) fn block_on_thread<F: Future>(fut: F, spin: Duration) -> F::Output {
    poll_until_ready(fut, Signal::new(None), |signal| signal.wait(spin, None))
}

/// Polls `fut` on this thread with `signal` as its waker, calling `wait` between
/// polls (it returns once the signal was notified, or to let the caller poll anyway).
pub(crate) fn poll_until_ready<F: Future>(
    fut: F,
    signal: Arc<Signal>,
    mut wait: impl FnMut(&Signal),
) -> F::Output {
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        wait(&signal);
    }
}
