//! Counters, one cache-padded shard per vCPU plus one for all other threads (core only).
//!
//! A vCPU is the only writer of its shard, so it bumps with a plain load + store (no
//! locked instruction on the hot path); the shared shard uses `fetch_add`. A snapshot
//! sums the shards: each counter is exact, the set is not one atomic instant.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the runtime did. Every park and unpark of a thread is a futex call, which in
/// an enclave is an exit: `exits == parks + unparks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Tasks spawned (plain and scoped).
    pub spawned: u64,
    /// Tasks whose future returned a value (not cancelled, not panicked).
    pub completed: u64,
    /// Tasks whose future has not been dropped yet (spawned − dropped).
    pub live_tasks: u64,
    /// Successful steals of a batch from another vCPU's queue.
    pub steals: u64,
    /// Threads parked (vCPUs and `block_on` callers): one exit each.
    pub parks: u64,
    /// Parked threads unparked by another thread: one exit each.
    pub unparks: u64,
    /// `parks + unparks`.
    pub exits: u64,
    /// Task polls.
    pub polls: u64,
    /// Timers that fired (their deadline passed and their waker was woken).
    pub timers_fired: u64,
    /// Sum of what the registered pollers returned.
    pub poller_events: u64,
}

/// Pads to two cache lines so neighbours do not false-share (adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One thread's (or the other threads') counters.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) spawned: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) unparks: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
    pub(crate) poller_events: AtomicU64,
}

/// A shard and whether the caller is its only writer.
#[derive(Clone, Copy)]
pub(crate) struct ShardRef<'a> {
    shard: &'a Shard,
    owned: bool,
}

impl<'a> ShardRef<'a> {
    /// Adds `n` to the counter `pick` selects.
    #[inline]
    pub(crate) fn add(self, pick: impl FnOnce(&'a Shard) -> &'a AtomicU64, n: u64) {
        let c = pick(self.shard);
        if self.owned {
            c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            c.fetch_add(n, Relaxed);
        }
    }
}

/// All shards: `0..vcpus` for the vCPUs, the last for every other thread.
#[derive(Debug)]
pub(crate) struct Counters {
    shards: Box<[CachePadded<Shard>]>,
}

impl Counters {
    pub(crate) fn new(vcpus: usize) -> Self {
        Self { shards: (0..=vcpus).map(|_| CachePadded::default()).collect::<Vec<_>>().into() }
    }

    /// The shard of vCPU `index` (the caller must be that vCPU), or the shared one.
    #[inline]
    pub(crate) fn shard(&self, vcpu: Option<usize>) -> ShardRef<'_> {
        match vcpu {
            Some(i) => ShardRef { shard: &self.shards[i], owned: true },
            None => ShardRef { shard: &self.shards[self.shards.len() - 1], owned: false },
        }
    }

    pub(crate) fn snapshot(&self) -> RuntimeStats {
        let mut s = RuntimeStats::default();
        let mut dropped = 0u64;
        for sh in self.shards.iter() {
            s.spawned = s.spawned.wrapping_add(sh.spawned.load(Relaxed));
            s.completed = s.completed.wrapping_add(sh.completed.load(Relaxed));
            dropped = dropped.wrapping_add(sh.dropped.load(Relaxed));
            s.steals = s.steals.wrapping_add(sh.steals.load(Relaxed));
            s.parks = s.parks.wrapping_add(sh.parks.load(Relaxed));
            s.unparks = s.unparks.wrapping_add(sh.unparks.load(Relaxed));
            s.polls = s.polls.wrapping_add(sh.polls.load(Relaxed));
            s.timers_fired = s.timers_fired.wrapping_add(sh.timers_fired.load(Relaxed));
            s.poller_events = s.poller_events.wrapping_add(sh.poller_events.load(Relaxed));
        }
        // A drop counted on one shard may be read before its spawn on another.
        s.live_tasks = s.spawned.saturating_sub(dropped);
        s.exits = s.parks + s.unparks;
        s
    }
}
