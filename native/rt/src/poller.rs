//! IO pollers: what the vCPUs call in their loop to reap completions.
//!
//! There is no poller thread: every vCPU calls every registered poller between task
//! batches and while idle. A vCPU keeps its own copy of the list and refreshes it when
//! the list's version changes, so the loop takes no lock. While all vCPUs are idle,
//! one of them parks for at most 1 ms at a time to keep polling (one exit per wake).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Reaps completions (or any event source) without blocking; called by every vCPU
/// in its scheduling loop, concurrently. Must not block and should not panic (a panic
/// ends the vCPU that called it).
pub trait Poller: Send + Sync {
    /// Handles what is ready (e.g. wakes the tasks whose IO completed); returns how
    /// many events it handled.
    fn poll(&self) -> usize;
}

/// Names a registered poller, for [`Runtime::remove_poller`](crate::Runtime::remove_poller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PollerId(u64);

/// The registered pollers.
#[derive(Default)]
pub(crate) struct PollerSet {
    list: Mutex<Vec<(PollerId, Arc<dyn Poller>)>>,
    /// Bumped on every change; 0 means "never changed, empty".
    version: AtomicU64,
    next_id: AtomicU64,
    len: AtomicUsize,
}

/// A vCPU's copy of the list.
#[derive(Default)]
pub(crate) struct PollerCache {
    version: u64,
    pollers: Vec<Arc<dyn Poller>>,
}

impl PollerCache {
    pub(crate) fn pollers(&self) -> &[Arc<dyn Poller>] {
        &self.pollers
    }
}

impl PollerSet {
    fn change(&self, f: impl FnOnce(&mut Vec<(PollerId, Arc<dyn Poller>)>)) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut list);
        self.len.store(list.len(), Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn add(&self, poller: Arc<dyn Poller>) -> PollerId {
        let id = PollerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.change(|l| l.push((id, poller)));
        id
    }

    pub(crate) fn remove(&self, id: PollerId) {
        self.change(|l| l.retain(|(i, _)| *i != id));
    }

    pub(crate) fn clear(&self) {
        self.change(Vec::clear);
    }

    /// True if no poller is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Brings `cache` up to date (takes the lock only after a change).
    #[inline]
    pub(crate) fn refresh(&self, cache: &mut PollerCache) {
        let version = self.version.load(Ordering::Acquire);
        if version != cache.version {
            let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
            cache.pollers = list.iter().map(|(_, p)| p.clone()).collect();
            cache.version = version;
        }
    }
}
