//! [`Mutex`]: an async lock, handed over in FIFO order.

use core::cell::UnsafeCell;
use core::future::Future;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::waitlist::{Cancelled, Status, WaitList};
use crate::lock::{Locked, RawLock, SpinLock};

#[derive(Default)]
struct State {
    locked: bool,
    waiters: WaitList,
}

impl State {
    /// Unlocks, or hands the lock to the oldest waiter (it stays locked): no newcomer
    /// can barge past a waiter, so none starves. Returns the waker to wake.
    fn release(&mut self) -> Option<Waker> {
        match self.waiters.signal_one() {
            Some(waker) => waker,
            None => {
                self.locked = false;
                None
            }
        }
    }
}

/// An async mutual-exclusion lock for `T`. Waiters get the lock in arrival order.
pub struct Mutex<T, L: RawLock = SpinLock> {
    state: Locked<L, State>,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reached through a `MutexGuard`, and at most one exists at a
// time (`State::locked`), so sharing the mutex hands `T` between threads: `T: Send`.
unsafe impl<T: Send, L: RawLock> Sync for Mutex<T, L> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub fn new(value: T) -> Self {
        Self::with_lock(value)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T, L: RawLock> Mutex<T, L> {
    /// A new unlocked mutex whose state is guarded by an `L`.
    pub fn with_lock(value: T) -> Self {
        Self { state: Locked::new(State::default()), data: UnsafeCell::new(value) }
    }

    /// Waits for the lock. Dropping the future before it completes gives up the place
    /// in line (and the lock, if it was just handed over).
    pub fn lock(&self) -> Lock<'_, T, L> {
        Lock { mutex: self, ticket: None, done: false }
    }

    /// Takes the lock if it is free and nobody waits for it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T, L>> {
        let mut st = self.state.lock();
        if st.locked || !st.waiters.is_empty() {
            return None;
        }
        st.locked = true;
        Some(MutexGuard { mutex: self, _data: PhantomData })
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    fn unlock(&self) {
        let waker = self.state.lock().release();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The future of [`Mutex::lock`].
#[must_use = "a lock future does nothing unless awaited"]
pub struct Lock<'a, T, L: RawLock = SpinLock> {
    mutex: &'a Mutex<T, L>,
    ticket: Option<u64>,
    done: bool,
}

impl<'a, T, L: RawLock> Future for Lock<'a, T, L> {
    type Output = MutexGuard<'a, T, L>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "Lock polled after completion");
        let mutex = self.mutex;
        let mut st = mutex.state.lock();
        let acquired = match self.ticket {
            None if !st.locked && st.waiters.is_empty() => {
                st.locked = true;
                true
            }
            None => {
                self.ticket = Some(st.waiters.register(Some(cx.waker().clone())));
                false
            }
            Some(ticket) => match st.waiters.poll(ticket, cx.waker()) {
                Status::Signalled => true,
                Status::Waiting(old) => {
                    drop(st);
                    drop(old);
                    return Poll::Pending;
                }
            },
        };
        drop(st);
        if acquired {
            self.done = true;
            Poll::Ready(MutexGuard { mutex, _data: PhantomData })
        } else {
            Poll::Pending
        }
    }
}

impl<T, L: RawLock> Drop for Lock<'_, T, L> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.filter(|_| !self.done) else { return };
        let mut st = self.mutex.state.lock();
        let (old, wake) = match st.waiters.cancel(ticket) {
            Cancelled::Waiting(old) => (old, None),
            // The lock was handed to us: pass it on.
            Cancelled::SignalledOne | Cancelled::SignalledAll => (None, st.release()),
        };
        drop(st);
        drop(old);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// Holds the lock of a [`Mutex`]; unlocks (or hands over) on drop.
#[must_use = "dropping the guard unlocks at once"]
pub struct MutexGuard<'a, T, L: RawLock = SpinLock> {
    mutex: &'a Mutex<T, L>,
    /// Send/Sync as `&mut T`: the guard gives exclusive access to `T`.
    _data: PhantomData<&'a mut T>,
}

impl<T, L: RawLock> Deref for MutexGuard<'_, T, L> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a guard exists only while its mutex is locked for it.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T, L: RawLock> DerefMut for MutexGuard<'_, T, L> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a guard exists only while its mutex is locked for it, and `&mut self`
        // makes this the only reference through it.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T, L: RawLock> Drop for MutexGuard<'_, T, L> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}
