//! Timers: (deadline, sequence) → waker, in deadline order (core only).
//!
//! Deadlines are nanoseconds on a clock the owner chooses (the runtime: since it was
//! built). Nobody owns a timer thread: the owner calls [`TimerQueue::fire`] whenever
//! it passes by (the vCPU loop) and parks no longer than [`TimerQueue::next_deadline`].
//! A `BTreeMap` rather than a heap so that a dropped sleep removes its entry and its
//! waker (which keeps a task allocation alive) at once.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use core::task::Waker;

use crate::lock::{Locked, SpinLock};

/// Names one registered timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    deadline: u64,
    seq: u64,
}

impl TimerKey {
    /// The deadline this timer was registered for.
    pub fn deadline(&self) -> u64 {
        self.deadline
    }
}

#[derive(Default)]
struct Inner {
    map: BTreeMap<TimerKey, Waker>,
    seq: u64,
}

/// Registered timers. Wakers are cloned and dropped outside the lock.
pub struct TimerQueue {
    inner: Locked<SpinLock, Inner>,
    /// Earliest deadline or `u64::MAX`, readable without the lock (SeqCst: a parking
    /// vCPU and an inserter each must see the other, see `sched`).
    next: AtomicU64,
}

impl Default for TimerQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self { inner: Locked::new(Inner::default()), next: AtomicU64::new(u64::MAX) }
    }

    fn publish(&self, inner: &Inner) {
        self.next.store(inner.map.keys().next().map_or(u64::MAX, |k| k.deadline), SeqCst);
    }

    /// Registers `waker` for `deadline`; true if it is now the earliest deadline (so a
    /// sleeper parked for a later one must be told).
    pub fn insert(&self, deadline: u64, waker: Waker) -> (TimerKey, bool) {
        let mut inner = self.inner.lock();
        inner.seq += 1;
        let key = TimerKey { deadline, seq: inner.seq };
        inner.map.insert(key, waker);
        let earliest = inner.map.keys().next() == Some(&key);
        if earliest {
            self.publish(&inner);
        }
        (key, earliest)
    }

    /// Replaces the waker of `key` unless it wakes the same task; false if the timer
    /// is gone (fired or removed).
    pub fn update(&self, key: TimerKey, waker: &Waker) -> bool {
        let old;
        {
            let mut inner = self.inner.lock();
            match inner.map.get_mut(&key) {
                None => return false,
                Some(w) if w.will_wake(waker) => return true,
                Some(w) => old = core::mem::replace(w, waker.clone()),
            }
        }
        drop(old);
        true
    }

    /// Removes `key`; true if it was still registered.
    pub fn remove(&self, key: TimerKey) -> bool {
        let old = {
            let mut inner = self.inner.lock();
            let old = inner.map.remove(&key);
            if old.is_some() {
                self.publish(&inner);
            }
            old
        };
        old.is_some()
    }

    /// The earliest deadline, if any timer is registered.
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        let n = self.next.load(SeqCst);
        (n != u64::MAX).then_some(n)
    }

    /// Moves the wakers of every timer with `deadline <= now` into `out`, earliest
    /// first; returns how many. The caller wakes them, after this returns.
    pub fn fire(&self, now: u64, out: &mut Vec<Waker>) -> usize {
        if self.next.load(SeqCst) > now {
            return 0;
        }
        let mut inner = self.inner.lock();
        let before = out.len();
        while let Some(entry) = inner.map.first_entry() {
            if entry.key().deadline > now {
                break;
            }
            out.push(entry.remove());
        }
        self.publish(&inner);
        out.len() - before
    }

    /// Registered timers.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// True if no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.next_deadline().is_none()
    }
}
