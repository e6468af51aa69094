//! The lock under the runtime's short critical sections (core only).
//!
//! The sections it guards (a timer insert, a waiter-list push) are tens of
//! instructions, and in an enclave a futex-based mutex that parks is an exit, so the
//! default is a spin lock. [`RawLock`] lets tests swap in a model-checked lock and
//! Occlum swap in its own.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A raw mutual-exclusion lock, as guarded data structures here need it.
///
/// # Safety
/// Implementations must provide mutual exclusion: between a `lock` (or a `try_lock`
/// that returned true) and the matching `unlock`, no other caller's `lock` returns or
/// `try_lock` succeeds, and `unlock` must release-synchronize with the next acquire.
pub unsafe trait RawLock: Send + Sync {
    /// A new, unlocked lock.
    fn new() -> Self;
    /// Blocks (spins) until the lock is held.
    fn lock(&self);
    /// Takes the lock if it is free; true if taken.
    fn try_lock(&self) -> bool;
    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn unlock(&self);
}

/// Test-and-test-and-set spin lock. With std, a waiter that spun for long yields its
/// core (a syscall, so only when the holder was likely preempted).
#[derive(Debug, Default)]
pub struct SpinLock(AtomicBool);

// SAFETY: `swap(true, Acquire)` succeeds for one caller until `store(false, Release)`.
unsafe impl RawLock for SpinLock {
    fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    #[inline]
    fn lock(&self) {
        let mut spins = 0u32;
        while self.0.swap(true, Ordering::Acquire) {
            while self.0.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                #[cfg(feature = "std")]
                if spins % 4096 == 0 {
                    std::thread::yield_now();
                    continue;
                }
                core::hint::spin_loop();
            }
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::Acquire)
    }

    #[inline]
    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A value guarded by a [`RawLock`]; for internal state, never held across an await.
pub(crate) struct Locked<L, T> {
    raw: L,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serializes all access to `data`, so sharing needs only `T: Send`.
unsafe impl<L: RawLock, T: Send> Sync for Locked<L, T> {}

impl<L: RawLock, T> Locked<L, T> {
    pub(crate) fn new(data: T) -> Self {
        Self { raw: L::new(), data: UnsafeCell::new(data) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> LockedGuard<'_, L, T> {
        self.raw.lock();
        LockedGuard { locked: self }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Proof that the lock is held; unlocks on drop.
pub(crate) struct LockedGuard<'a, L: RawLock, T> {
    locked: &'a Locked<L, T>,
}

impl<L: RawLock, T> Deref for LockedGuard<'_, L, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while the lock is held.
        unsafe { &*self.locked.data.get() }
    }
}

impl<L: RawLock, T> DerefMut for LockedGuard<'_, L, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard exists only while the lock is held, and `&mut self` makes
        // this the only reference through it.
        unsafe { &mut *self.locked.data.get() }
    }
}

impl<L: RawLock, T> Drop for LockedGuard<'_, L, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard was created by `lock`, so we hold the lock.
        unsafe { self.locked.raw.unlock() }
    }
}
