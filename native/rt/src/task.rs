//! Tasks: spawning into the scheduler, [`JoinHandle`], [`JoinError`], [`yield_now`].
//!
//! A task is an async-task allocation whose metadata names its runtime and registry
//! key, and whose future is wrapped in `Tracked`: the wrapper counts completion, and
//! its guard, dropped after the user's future (whether it completed, was cancelled
//! or panicked), counts the drop and leaves the registry. So `live_tasks` is exact.
//!
//! A task enters the registry on its first `Pending`, in the shard of the vCPU that
//! polled it: tasks that finish in one poll (most of a fan-out) never pay for it,
//! and a task that is not registered is in a run queue or running, both of which
//! shutdown drains.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_task::{FallibleTask, WithInfo};

use crate::registry::NO_KEY;
use crate::sched::{self, Shared, TaskMeta};

/// Why a task produced no value.
pub enum JoinError {
    /// The task was cancelled (its handle's `cancel`, or runtime shutdown).
    Cancelled,
    /// The task panicked; this is the panic's payload.
    Panicked(Box<dyn Any + Send>),
}

impl JoinError {
    /// The panic message, if the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            Self::Cancelled => None,
            Self::Panicked(p) => {
                p.downcast_ref::<&str>().copied().or_else(|| p.downcast_ref::<String>().map(String::as_str))
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("Cancelled"),
            Self::Panicked(_) => {
                f.debug_tuple("Panicked").field(&self.panic_message().unwrap_or("..")).finish()
            }
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("task was cancelled"),
            Self::Panicked(_) => match self.panic_message() {
                Some(m) => write!(f, "task panicked: {m}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

/// Owns a spawned task; awaiting it gives the task's output.
///
/// Dropping the handle cancels the task (as in async-task); call
/// [`detach`](Self::detach) to let it run on unobserved.
#[must_use = "dropping a JoinHandle cancels its task; call .detach() to let it run"]
pub struct JoinHandle<T> {
    task: FallibleTask<T, TaskMeta>,
}

impl<T> JoinHandle<T> {
    /// Lets the task run to completion with nobody waiting for its output.
    pub fn detach(self) {
        self.task.detach();
    }

    /// Cancels the task: its future is dropped by a vCPU soon (at once if idle).
    pub fn cancel(self) {
        drop(self);
    }

    /// True once the task finished (completed, panicked or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Blocks the calling thread until the task finished. For threads outside the
    /// runtime; panics on a vCPU (it would stall that vCPU's queue).
    pub fn join(self) -> Result<T, JoinError> {
        assert!(!sched::on_vcpu(), "JoinHandle::join on a vCPU thread: .await the handle instead");
        crate::park::block_on_thread(self, Duration::from_micros(50))
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // async-task re-raises the task's panic here; turn it back into a value.
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.task).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Some(v))) => Poll::Ready(Ok(v)),
            Ok(Poll::Ready(None)) => Poll::Ready(Err(JoinError::Cancelled)),
            Err(payload) => Poll::Ready(Err(JoinError::Panicked(payload))),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

/// Spawns `fut` on `shared`.
///
/// # Safety
/// `fut` and its output cross threads, so they must be `Send` in substance. If `fut`
/// borrows non-`'static` data, the caller must keep that data alive until the future
/// is dropped, and the output must not borrow it (see `scope`).
pub(crate) unsafe fn spawn_unchecked<F>(shared: &Arc<Shared>, fut: F) -> FallibleTask<F::Output, TaskMeta>
where
    F: Future + Send,
    F::Output: Send,
{
    let meta = TaskMeta { shared: shared.clone(), key: AtomicU64::new(NO_KEY) };
    // SAFETY: the future and output are Send (bounds above) and the schedule function
    // is a Send + Sync + 'static fn item, so the Runnable and Wakers may go anywhere.
    // The future borrows the task's own metadata, which async-task keeps alive until
    // the task is deallocated, after the future is dropped; anything else it borrows
    // is the caller's obligation (this function's contract).
    let (runnable, task) = unsafe {
        async_task::Builder::new()
            .propagate_panic(true)
            .metadata(meta)
            .spawn_unchecked(|meta| Tracked { fut, _guard: LiveGuard(meta) }, WithInfo(sched::schedule))
    };
    shared.submit(runnable);
    task.fallible()
}

/// Spawns a `'static` future on `shared`.
pub(crate) fn spawn<F>(shared: &Arc<Shared>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // SAFETY: `fut` and its output are Send and 'static.
    JoinHandle { task: unsafe { spawn_unchecked(shared, fut) } }
}

/// The user's future plus the guard that counts its drop; fields drop in order, so
/// the future is gone before the guard reports it.
struct Tracked<'m, F> {
    fut: F,
    _guard: LiveGuard<'m>,
}

struct LiveGuard<'m>(&'m TaskMeta);

impl LiveGuard<'_> {
    /// Enters the registry, so that shutdown can cancel this task while it is idle.
    #[cold]
    fn register(&self, waker: &Waker) {
        let shared = &self.0.shared;
        let shard = sched::vcpu_index(shared).unwrap_or(shared.vcpus());
        self.0.key.store(shared.registry.insert(shard, waker.clone()), Release);
        // Either shutdown's registry drain (after it set the flag, under the same
        // shard lock) sees this entry, or this load sees the flag: then reschedule,
        // and the stopped runtime drops the task.
        if shared.is_shutdown() {
            waker.wake_by_ref();
        }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        shared.shard().add(|s| &s.dropped, 1);
        let key = self.0.key.load(Acquire);
        if key != NO_KEY {
            drop(shared.registry.remove(key));
        }
    }
}

impl<F: Future> Future for Tracked<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: `Tracked` never moves it out, has no
        // Drop impl of its own, and is Unpin only when `F` is (auto trait).
        let (fut, guard) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.fut), &this._guard)
        };
        match fut.poll(cx) {
            Poll::Ready(out) => {
                guard.0.shared.shard().add(|s| &s.completed, 1);
                Poll::Ready(out)
            }
            Poll::Pending => {
                if guard.0.key.load(Relaxed) == NO_KEY {
                    guard.register(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

/// Lets the other ready tasks run once, then continues.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        // A task waking itself goes to the back of its vCPU's queue, not the LIFO slot.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}
