//! One vCPU: its loop (run, search, spin, park), its queues, its maintenance pass.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{fence, Ordering::*};
use std::sync::Arc;
use std::task::Waker;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Worker};

use super::{enter, Runnable, Shared, PARKED, RUNNING};
use crate::poller::PollerCache;

/// Tasks run between two passes over pollers, timers and the injector.
const MAINTENANCE_INTERVAL: u32 = 61;
/// LIFO-slot tasks run in a row before the slot's task goes to the back of the queue.
const LIFO_BUDGET: u32 = 8;
/// `spin_loop` hints between two idle checks.
const SPIN_ROUNDS: u32 = 32;
/// With pollers registered a parked vCPU wakes this often to poll: completions of
/// kernel IO cannot unpark anyone.
const POLLER_PARK: Duration = Duration::from_millis(1);

/// A vCPU's own state, reachable from its thread only.
pub(crate) struct Local {
    pub(super) index: usize,
    pub(super) shared: Arc<Shared>,
    worker: Worker<Runnable>,
    lifo: Cell<Option<Runnable>>,
    in_task: Cell<bool>,
    rng: Cell<u64>,
    pollers: RefCell<PollerCache>,
    fired: RefCell<Vec<Waker>>,
}

/// The body of vCPU thread `index`.
pub(crate) fn vcpu_main(shared: Arc<Shared>, index: usize, worker: Worker<Runnable>) {
    let _ = shared.vcpus[index].thread.set(thread::current());
    let local = Rc::new(Local {
        index,
        shared: shared.clone(),
        worker,
        lifo: Cell::new(None),
        in_task: Cell::new(false),
        rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
        pollers: RefCell::new(PollerCache::default()),
        fired: RefCell::new(Vec::new()),
    });
    let guard = enter(shared, Some(local.clone()));
    local.run();
    // Dropping a task may wake others onto this queue: drain until it stays empty.
    while let Some(r) = local.lifo.take().or_else(|| local.worker.pop()) {
        drop(r);
    }
    drop(guard);
}

impl Local {
    /// Queues a task woken (or spawned) on this vCPU.
    #[inline]
    pub(super) fn push(&self, r: Runnable, yielded: bool) {
        if yielded || !self.in_task.get() {
            self.worker.push(r);
        } else {
            match self.lifo.replace(Some(r)) {
                None => return,
                Some(prev) => self.worker.push(prev),
            }
        }
        self.shared.notify_if_idle();
    }

    fn run(&self) {
        let shared = &*self.shared;
        let mut tick: u32 = 0;
        let mut streak: u32 = 0;
        loop {
            while let Some(r) = self.next_task(tick, &mut streak) {
                self.run_task(r);
                tick = tick.wrapping_add(1);
                if tick % MAINTENANCE_INTERVAL == 0 {
                    self.maintenance();
                    if shared.is_shutdown() {
                        return;
                    }
                }
            }
            self.maintenance();
            if shared.is_shutdown() {
                return;
            }
            if !self.worker.is_empty() {
                continue;
            }
            match self.search_spinning() {
                Some(r) => {
                    streak = 0;
                    self.run_task(r);
                    tick = tick.wrapping_add(1);
                }
                None if shared.is_shutdown() => return,
                None => self.park(),
            }
        }
    }

    #[inline]
    fn run_task(&self, r: Runnable) {
        if self.shared.is_shutdown() {
            // Stopping (maybe by the task that just ran): cancel instead of running.
            drop(r);
            return;
        }
        self.in_task.set(true);
        self.shared.counters.shard(Some(self.index)).add(|s| &s.polls, 1);
        r.run();
        self.in_task.set(false);
    }

    /// Local work: the LIFO slot (within budget), the deque, then the injector (which
    /// comes first every `MAINTENANCE_INTERVAL` ticks so outside spawns never starve).
    #[inline]
    fn next_task(&self, tick: u32, streak: &mut u32) -> Option<Runnable> {
        if tick % MAINTENANCE_INTERVAL == 0 {
            if let Some(r) = self.steal_injector() {
                return Some(r);
            }
        }
        if let Some(r) = self.lifo.take() {
            if *streak < LIFO_BUDGET {
                *streak += 1;
                return Some(r);
            }
            self.worker.push(r);
            self.shared.notify_if_idle();
        }
        *streak = 0;
        self.worker.pop().or_else(|| self.steal_injector())
    }

    fn steal_injector(&self) -> Option<Runnable> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.worker) {
                Steal::Success(r) => return Some(r),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// The injector, then half of a peer's deque, peers in random order.
    fn search(&self) -> Option<Runnable> {
        if let Some(r) = self.steal_injector() {
            return Some(r);
        }
        let n = self.shared.vcpus.len();
        if n < 2 {
            return None;
        }
        // xorshift64: a different victim order each time, without contention.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        let start = (x % n as u64) as usize;
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.index {
                continue;
            }
            loop {
                match self.shared.vcpus[i].stealer.steal_batch_and_pop(&self.worker) {
                    Steal::Success(r) => {
                        self.shared.counters.shard(Some(self.index)).add(|s| &s.steals, 1);
                        return Some(r);
                    }
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
        None
    }

    /// Searches for work for up to `spin_before_park`, counted in `num_spinning`.
    fn search_spinning(&self) -> Option<Runnable> {
        let shared = &*self.shared;
        shared.num_spinning.fetch_add(1, SeqCst);
        fence(SeqCst);
        let end = Instant::now() + shared.spin;
        let found = loop {
            if let Some(r) = self.search() {
                break Some(r);
            }
            self.maintenance();
            if let Some(r) = self.lifo.take().or_else(|| self.worker.pop()) {
                break Some(r);
            }
            if shared.is_shutdown() || Instant::now() >= end {
                break None;
            }
            for _ in 0..SPIN_ROUNDS {
                std::hint::spin_loop();
            }
        };
        let last = shared.num_spinning.fetch_sub(1, SeqCst) == 1;
        if found.is_some() && last && (!self.worker.is_empty() || !shared.injector.is_empty()) {
            shared.notify_if_idle();
        }
        found
    }

    /// Polls the pollers and fires due timers; what they wake lands on this deque.
    fn maintenance(&self) {
        let shared = &*self.shared;
        let shard = shared.counters.shard(Some(self.index));
        {
            let mut cache = self.pollers.borrow_mut();
            shared.pollers.refresh(&mut cache);
            let events: usize = cache.pollers().iter().map(|p| p.poll()).sum();
            if events > 0 {
                shard.add(|s| &s.poller_events, events as u64);
            }
        }
        if let Some(next) = shared.timers.next_deadline() {
            let now = shared.now_ns();
            if next <= now {
                let mut fired = std::mem::take(&mut *self.fired.borrow_mut());
                let n = shared.timers.fire(now, &mut fired);
                shard.add(|s| &s.timers_fired, n as u64);
                for w in fired.drain(..) {
                    w.wake();
                }
                *self.fired.borrow_mut() = fired;
            }
        }
    }

    /// Parks until notified; the timed parker also until the next timer or (with
    /// pollers) `POLLER_PARK`.
    fn park(&self) {
        let shared = &*self.shared;
        let slot = &shared.vcpus[self.index];
        let me = self.index + 1;
        slot.state.store(PARKED, SeqCst);
        shared.num_parked.fetch_add(1, SeqCst);
        // Claimed before reading the timers: an inserter that misses the claim is
        // seen by the read below (both sides fence).
        let timed = shared.timed_parker.compare_exchange(0, me, SeqCst, Relaxed).is_ok();
        fence(SeqCst);
        let mut ready = shared.is_shutdown() || shared.has_visible_work(self.index);
        let mut timeout = None;
        if !ready && timed {
            if let Some(next) = shared.timers.next_deadline() {
                let now = shared.now_ns();
                ready = next <= now;
                timeout = Some(Duration::from_nanos(next.saturating_sub(now)));
            }
            if !shared.pollers.is_empty() {
                timeout = Some(timeout.map_or(POLLER_PARK, |t| t.min(POLLER_PARK)));
            }
            if timeout.is_none() {
                // Nothing to time: let another parker take the role if one appears.
                shared.timed_parker.store(0, SeqCst);
            }
        }
        if !ready {
            shared.counters.shard(Some(self.index)).add(|s| &s.parks, 1);
            match timeout {
                Some(t) => thread::park_timeout(t),
                None => thread::park(),
            }
        }
        if slot.state.compare_exchange(PARKED, RUNNING, SeqCst, SeqCst).is_ok() {
            shared.num_parked.fetch_sub(1, SeqCst);
        } else {
            // NOTIFIED: the notifier already took us off `num_parked`.
            slot.state.store(RUNNING, SeqCst);
        }
        if timed {
            let _ = shared.timed_parker.compare_exchange(me, 0, SeqCst, Relaxed);
        }
    }
}
