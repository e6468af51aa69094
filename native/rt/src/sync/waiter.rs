//! [`WaiterQueue`]: wait until notified, as Occlum's `WaiterQueue`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::waitlist::{Cancelled, Status, WaitList};
use crate::lock::{Locked, RawLock, SpinLock};

/// A queue of waiting tasks, woken by [`notify_one`](Self::notify_one) (oldest first)
/// or [`notify_all`](Self::notify_all).
///
/// A waiter takes its place in the queue when [`wait`](Self::wait) is called, not
/// when the future is first polled, so the usual pattern loses no wake-up:
/// ```
/// # use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// # use exitless_rt::WaiterQueue;
/// # let (queue, ready) = (WaiterQueue::new(), AtomicBool::new(false));
/// # let wait_ready = async {
/// loop {
///     let w = queue.wait(); // from here on, a notify is not lost
///     if ready.load(SeqCst) {
///         break;
///     }
///     w.await;
/// }
/// # };
/// # drop(wait_ready);
/// ```
/// Notifications are not stored for future waiters: with nobody waiting,
/// `notify_one` returns false and does nothing.
pub struct WaiterQueue<L: RawLock = SpinLock> {
    list: Locked<L, WaitList>,
}

impl WaiterQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::with_lock()
    }
}

impl Default for WaiterQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: RawLock> WaiterQueue<L> {
    /// An empty queue whose state is guarded by an `L`.
    pub fn with_lock() -> Self {
        Self { list: Locked::new(WaitList::default()) }
    }

    /// Joins the queue now; the future completes once this waiter is notified.
    pub fn wait(&self) -> Wait<'_, L> {
        let ticket = self.list.lock().register(None);
        Wait { queue: self, ticket, done: false }
    }

    /// Notifies the oldest waiter; false if nobody waits.
    pub fn notify_one(&self) -> bool {
        let signalled = self.list.lock().signal_one();
        match signalled {
            Some(waker) => {
                if let Some(w) = waker {
                    w.wake();
                }
                true
            }
            None => false,
        }
    }

    /// Notifies every current waiter; returns how many.
    pub fn notify_all(&self) -> usize {
        let all = self.list.lock().signal_all();
        let n = all.len();
        for (_, waker) in all {
            if let Some(w) = waker {
                w.wake();
            }
        }
        n
    }
}

/// A place in a [`WaiterQueue`]; completes once notified. Dropping it before it
/// completed leaves the queue, passing on a `notify_one` it received.
#[must_use = "a waiter does nothing unless awaited"]
pub struct Wait<'a, L: RawLock = SpinLock> {
    queue: &'a WaiterQueue<L>,
    ticket: u64,
    done: bool,
}

impl<L: RawLock> Future for Wait<'_, L> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let status = self.queue.list.lock().poll(self.ticket, cx.waker());
        match status {
            Status::Waiting(old) => {
                drop(old);
                Poll::Pending
            }
            Status::Signalled => {
                self.done = true;
                Poll::Ready(())
            }
        }
    }
}

impl<L: RawLock> Drop for Wait<'_, L> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let cancelled = self.queue.list.lock().cancel(self.ticket);
        match cancelled {
            Cancelled::Waiting(waker) => drop(waker),
            Cancelled::SignalledOne => {
                self.queue.notify_one();
            }
            Cancelled::SignalledAll => {}
        }
    }
}
