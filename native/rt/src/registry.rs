//! Every live task's waker, in sharded slabs (core only).
//!
//! A task that waits on something that never comes (an hour-long sleep, a queue no
//! one notifies) sits in no run queue. Shutdown wakes every waker here, and a woken
//! task of a stopped runtime is dropped, so shutdown cancels all tasks and leaks none.
//! A task registers on its first `Pending` (see `task`), not at spawn.
//! A key packs shard, slot and a generation, so a stale key removes nothing.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::task::Waker;

use crate::counters::CachePadded;
use crate::lock::{Locked, SpinLock};

/// A key that names no entry.
pub(crate) const NO_KEY: u64 = u64::MAX;
const NO_SLOT: u32 = u32::MAX;

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Option<u32>,
}

struct Slot {
    gen: u16,
    waker: Option<Waker>,
    next_free: u32,
}

impl Slab {
    fn vacate(&mut self, idx: u32) -> Option<Waker> {
        let slot = &mut self.slots[idx as usize];
        let waker = slot.waker.take();
        slot.gen = slot.gen.wrapping_add(1);
        slot.next_free = self.free.unwrap_or(NO_SLOT);
        self.free = Some(idx);
        waker
    }
}

/// Sharded so that vCPUs registering their own spawns rarely meet.
pub(crate) struct Registry {
    shards: Box<[CachePadded<Locked<SpinLock, Slab>>]>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Self {
        assert!(shards <= usize::from(u16::MAX), "too many registry shards");
        Self { shards: (0..shards).map(|_| CachePadded(Locked::new(Slab::default()))).collect() }
    }

    /// Stores `waker` in shard `shard % shards`; returns its key.
    pub(crate) fn insert(&self, shard: usize, waker: Waker) -> u64 {
        let shard = shard % self.shards.len();
        let mut slab = self.shards[shard].lock();
        let idx = match slab.free {
            Some(idx) => {
                let next = slab.slots[idx as usize].next_free;
                slab.free = (next != NO_SLOT).then_some(next);
                slab.slots[idx as usize].waker = Some(waker);
                idx
            }
            None => {
                let idx = u32::try_from(slab.slots.len()).expect("registry shard full");
                slab.slots.push(Slot { gen: 0, waker: Some(waker), next_free: NO_SLOT });
                idx
            }
        };
        let gen = slab.slots[idx as usize].gen;
        (shard as u64) << 48 | u64::from(gen) << 32 | u64::from(idx)
    }

    /// Takes the waker under `key` out, if it is still there (drop it after this returns).
    pub(crate) fn remove(&self, key: u64) -> Option<Waker> {
        if key == NO_KEY {
            return None;
        }
        let (shard, gen, idx) = ((key >> 48) as usize, (key >> 32) as u16, key as u32);
        let mut slab = self.shards.get(shard)?.lock();
        match slab.slots.get(idx as usize) {
            Some(s) if s.gen == gen && s.waker.is_some() => slab.vacate(idx),
            _ => None,
        }
    }

    /// Takes every waker out.
    pub(crate) fn drain(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut slab = shard.lock();
            for idx in 0..slab.slots.len() {
                if slab.slots[idx].waker.is_some() {
                    out.extend(slab.vacate(idx as u32));
                }
            }
        }
        out
    }
}
