//! [`Sleep`], [`sleep`] and [`timeout`]: timers driven by the vCPUs.
//!
//! A sleep registers in the runtime's [`TimerQueue`](crate::TimerQueue) on its first
//! pending poll, updates its waker if polled again, and leaves the queue when done
//! or dropped. It completes only once `Instant::now() >= deadline`, whatever woke it:
//! never early.

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::sched::{self, Shared};
use crate::timer::TimerKey;

/// Completes at or after its deadline.
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    shared: Arc<Shared>,
    deadline: Instant,
    key: Option<TimerKey>,
}

impl Sleep {
    pub(crate) fn new(shared: Arc<Shared>, d: Duration) -> Self {
        let now = Instant::now();
        // A duration too long for Instant: a century is "never" here.
        let deadline = now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        Self { shared, deadline, key: None }
    }

    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn deregister(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared.timers.remove(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.deregister();
            return Poll::Ready(());
        }
        let this = &mut *self;
        let registered = this.key.is_some_and(|k| this.shared.timers.update(k, cx.waker()));
        if !registered {
            let at = this.shared.instant_ns(this.deadline);
            let (key, earliest) = this.shared.timers.insert(at, cx.waker().clone());
            this.key = Some(key);
            if earliest {
                // The vCPU parked with a timeout may be sleeping past this deadline.
                this.shared.notify_timer();
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

/// Sleeps for `d` on the current runtime.
///
/// # Panics
/// Outside a runtime (not on a vCPU, not inside `block_on`).
pub fn sleep(d: Duration) -> Sleep {
    match sched::current_shared() {
        Some(shared) => Sleep::new(shared, d),
        None => panic!(
            "exitless_rt::sleep called outside a runtime (no vCPU or block_on on this thread); use Runtime::sleep"
        ),
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` for at most `d` on the current runtime (polled before the timer).
///
/// # Panics
/// Outside a runtime, like [`sleep`].
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut timer = sleep(d);
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(&mut timer).poll(cx).map(|()| Err(Elapsed(())))
    })
    .await
}
