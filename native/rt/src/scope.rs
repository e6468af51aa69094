//! [`Scope`]: tasks that borrow from the stack of the thread that opened the scope.
//!
//! Soundness rests on one ordering: a scoped task's wrapper drops the user's future
//! and hands its output over (or drops it) *before* it decrements the scope's
//! `pending` count, and `Runtime::scope` returns only when that count is zero. After
//! the decrement the task holds nothing that borrows `'env`, so it may outlive the
//! scope (its allocation, wakers or runnable can linger) without touching the stack.
//! The output goes through an `OutputSlot` rather than the task, because async-task
//! may drop a task's output late, on another thread.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use async_task::FallibleTask;

use crate::lock::{Locked, SpinLock};
use crate::park::Signal;
use crate::sched::{Shared, TaskMeta};
use crate::task::{self, JoinError};

/// Spawns tasks that may borrow data living at least `'env`; see [`Runtime::scope`](crate::Runtime::scope).
pub struct Scope<'s, 'env: 's> {
    shared: Arc<Shared>,
    state: Arc<ScopeState>,
    /// Invariant in `'s` and `'env`, as `std::thread::Scope`.
    _scope: PhantomData<&'s mut &'s ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

struct ScopeState {
    pending: AtomicUsize,
    /// A task panicked and nobody took the panic from its handle.
    panicked: AtomicBool,
    signal: Arc<Signal>,
}

impl ScopeState {
    fn finish(&self) {
        if self.pending.fetch_sub(1, AcqRel) == 1 {
            self.signal.notify();
        }
    }
}

/// Where a scoped task's result waits for its handle.
struct OutputSlot<T> {
    value: Locked<SpinLock, Option<thread::Result<T>>>,
    state: Arc<ScopeState>,
}

impl<T> Drop for OutputSlot<T> {
    fn drop(&mut self) {
        if matches!(self.value.get_mut(), Some(Err(_))) {
            self.state.panicked.store(true, Relaxed);
        }
    }
}

pub(crate) fn run<'env, R>(shared: &Arc<Shared>, f: impl for<'s> FnOnce(&'s Scope<'s, 'env>) -> R) -> R {
    let signal = Signal::new(Some(shared.clone()));
    let state =
        Arc::new(ScopeState { pending: AtomicUsize::new(0), panicked: AtomicBool::new(false), signal });
    let scope = Scope { shared: shared.clone(), state, _scope: PhantomData, _env: PhantomData };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    while scope.state.pending.load(Acquire) != 0 {
        scope.state.signal.wait(shared.spin, None);
    }
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if scope.state.panicked.load(Relaxed) => panic!("a scoped task panicked"),
        Ok(r) => r,
    }
}

impl<'s, 'env> Scope<'s, 'env> {
    /// Spawns a task that may borrow `'env` data. Dropping its handle detaches it (the
    /// scope still waits for it).
    pub fn spawn<F>(&'s self, fut: F) -> ScopedJoinHandle<'s, F::Output>
    where
        F: Future + Send + 'env,
        F::Output: Send + 'env,
    {
        self.state.pending.fetch_add(1, Relaxed);
        let slot = Arc::new(OutputSlot { value: Locked::new(None), state: self.state.clone() });
        let wrapper = ScopedFuture {
            fut: Some(Box::pin(fut)),
            slot: Some(slot.clone()),
            state: Some(self.state.clone()),
        };
        // SAFETY: the wrapper and its output are Send. The wrapper stops touching
        // `'env` data before `finish` (module docs), `Runtime::scope` outlives every
        // `finish`, and the task's output is `()`.
        let task = unsafe { task::spawn_unchecked(&self.shared, wrapper) };
        ScopedJoinHandle { task: Some(task), slot, _scope: PhantomData }
    }
}

/// The user's future, then its result into the slot, then `finish`: in that order.
struct ScopedFuture<F: Future> {
    fut: Option<Pin<Box<F>>>,
    slot: Option<Arc<OutputSlot<F::Output>>>,
    state: Option<Arc<ScopeState>>,
}

impl<F: Future> ScopedFuture<F> {
    fn finish(&mut self, out: Option<thread::Result<F::Output>>) {
        self.fut = None;
        if let Some(slot) = self.slot.take() {
            *slot.value.lock() = out;
        }
        if let Some(state) = self.state.take() {
            state.finish();
        }
    }
}

impl<F: Future> Future for ScopedFuture<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(fut) = self.fut.as_mut() else { return Poll::Ready(()) };
        let out = match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(payload),
        };
        self.finish(Some(out));
        Poll::Ready(())
    }
}

impl<F: Future> Drop for ScopedFuture<F> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Owns a scoped task; awaiting it (inside `block_on` or a task) or [`join`](Self::join)
/// gives the task's output.
#[must_use = "dropping a ScopedJoinHandle detaches the task"]
pub struct ScopedJoinHandle<'s, T> {
    task: Option<FallibleTask<(), TaskMeta>>,
    slot: Arc<OutputSlot<T>>,
    _scope: PhantomData<&'s ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Blocks the calling thread until the task finished; panics on a vCPU thread.
    pub fn join(self) -> Result<T, JoinError> {
        assert!(!crate::sched::on_vcpu(), "ScopedJoinHandle::join on a vCPU thread: .await it instead");
        crate::park::block_on_thread(self, std::time::Duration::from_micros(50))
    }

    /// True once the task finished.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(FallibleTask::is_finished)
    }
}

impl<T> Future for ScopedJoinHandle<'_, T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else { return Poll::Ready(Err(JoinError::Cancelled)) };
        if Pin::new(task).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.task = None;
        let result = self.slot.value.lock().take();
        Poll::Ready(match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(payload)) => Err(JoinError::Panicked(payload)),
            None => Err(JoinError::Cancelled),
        })
    }
}

impl<T> Drop for ScopedJoinHandle<'_, T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}
