//! The scheduler: vCPU threads, their queues, stealing, parking, shutdown.
//!
//! Each vCPU owns a FIFO `Worker` deque plus a LIFO slot for the task its running
//! task just woke (the ping-pong case: run it next, while its data is in cache). Work
//! from other threads goes to the shared `Injector`. An idle vCPU runs the pollers,
//! fires due timers, takes from the injector, steals half a peer's deque, spins for
//! `spin_before_park`, and only then parks: a park and the unpark that ends it are
//! two enclave exits, so they are counted and avoided.
//!
//! Sleep/wake protocol (no lost wake-up without a lock): a vCPU about to park stores
//! PARKED and bumps `num_parked`, fences, then re-checks queues, timers and shutdown.
//! A producer pushes, fences, then reads `num_spinning`/`num_parked`: one of the two
//! always sees the other. A producer skips the unpark while some vCPU spins (it will
//! find the work) or none is parked; a spinner that finds work while others park
//! wakes one more if work is left (the chain that spreads a burst).
//!
//! Only one parked vCPU, the timed parker, parks with a timeout (next timer, or the
//! poller interval); the others park until notified, so an idle runtime pays one
//! exit per timer or poll interval, not one per vCPU. A parking vCPU claims the role
//! before it reads the timers; a new earliest timer unparks the timed parker (or,
//! if none holds the role, any parked vCPU). Work wakes other vCPUs first.
//!
//! Here: `Shared` and the wake-up side; `vcpu`: a vCPU's loop and parking;
//! `context`: the thread-local that says which runtime and vCPU a thread is.

mod context;
mod vcpu;

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use async_task::ScheduleInfo;
use crossbeam_deque::{Injector, Steal, Stealer};

use crate::counters::{CachePadded, Counters, ShardRef};
use crate::poller::PollerSet;
use crate::registry::Registry;
use crate::timer::TimerQueue;

use context::with_local;
pub(crate) use context::{current_shared, enter, on_vcpu, vcpu_index};
pub(crate) use vcpu::vcpu_main;

/// What async-task stores in each task header: its runtime and its registry key.
pub(crate) struct TaskMeta {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: AtomicU64,
}

pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

const RUNNING: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;

/// One vCPU as the others see it.
pub(crate) struct VcpuSlot {
    state: AtomicU8,
    thread: OnceLock<Thread>,
    stealer: Stealer<Runnable>,
}

/// State shared by the handles, the vCPUs and every task.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) spin: Duration,
    injector: Injector<Runnable>,
    vcpus: Box<[CachePadded<VcpuSlot>]>,
    num_parked: CachePadded<AtomicUsize>,
    num_spinning: CachePadded<AtomicUsize>,
    /// 1 + index of the vCPU parked with a timeout, or 0.
    timed_parker: AtomicUsize,
    shutdown: AtomicBool,
    /// Live `Runtime` handles; the last one dropped shuts down.
    pub(crate) handles: AtomicUsize,
    pub(crate) counters: Counters,
    pub(crate) registry: Registry,
    pub(crate) timers: TimerQueue,
    epoch: Instant,
    pub(crate) pollers: PollerSet,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

/// The schedule function of every task (zero-sized: the runtime is in the metadata).
pub(crate) fn schedule(runnable: Runnable, info: ScheduleInfo) {
    let shared = Arc::as_ptr(&runnable.metadata().shared);
    let remote = with_local(shared, |local| match local {
        Some(l) => {
            l.push(runnable, info.woken_while_running);
            None
        }
        None => Some(runnable),
    });
    if let Some(r) = remote {
        // Own a reference: pushing may drop `r` (stopped runtime) and its metadata.
        let shared = r.metadata().shared.clone();
        shared.push_remote(r);
    }
}

impl Shared {
    pub(crate) fn new(name: String, spin: Duration, stealers: Vec<Stealer<Runnable>>) -> Self {
        let n = stealers.len();
        Self {
            name,
            spin,
            injector: Injector::new(),
            vcpus: stealers
                .into_iter()
                .map(|stealer| {
                    CachePadded(VcpuSlot { state: AtomicU8::new(RUNNING), thread: OnceLock::new(), stealer })
                })
                .collect(),
            num_parked: CachePadded(AtomicUsize::new(0)),
            num_spinning: CachePadded(AtomicUsize::new(0)),
            timed_parker: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            counters: Counters::new(n),
            registry: Registry::new(n + 1),
            timers: TimerQueue::new(),
            epoch: Instant::now(),
            pollers: PollerSet::default(),
            threads: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn vcpus(&self) -> usize {
        self.vcpus.len()
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Relaxed)
    }

    pub(crate) fn add_thread(&self, handle: thread::JoinHandle<()>) {
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
    }

    /// Nanoseconds since the runtime was built: the timer queue's clock.
    pub(crate) fn now_ns(&self) -> u64 {
        self.instant_ns(Instant::now())
    }

    /// `t` on the timer queue's clock (exact: `Instant` counts nanoseconds).
    pub(crate) fn instant_ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The counter shard of the calling thread.
    #[inline]
    pub(crate) fn shard(&self) -> ShardRef<'_> {
        self.counters.shard(vcpu_index(self))
    }

    /// Counts and queues a new task (local queue on a vCPU, else the injector).
    pub(crate) fn submit(self: &Arc<Self>, runnable: Runnable) {
        let runnable = with_local(Arc::as_ptr(self), |local| {
            self.counters.shard(local.map(|l| l.index)).add(|s| &s.spawned, 1);
            match local {
                Some(l) => {
                    l.push(runnable, false);
                    None
                }
                None => Some(runnable),
            }
        });
        if let Some(r) = runnable {
            self.push_remote(r);
        }
    }

    fn push_remote(&self, runnable: Runnable) {
        self.injector.push(runnable);
        fence(SeqCst);
        if self.shutdown.load(Relaxed) {
            // Whoever saw no shutdown before pushing is drained by the shutdown itself.
            self.drain_injector();
        } else {
            self.wake_idle_vcpu();
        }
    }

    fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(r) => drop(r),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
    }

    /// After making work or a timer visible: unparks a vCPU if none spins and one sleeps.
    #[inline]
    pub(crate) fn notify_if_idle(&self) {
        fence(SeqCst);
        self.wake_idle_vcpu();
    }

    #[inline]
    fn wake_idle_vcpu(&self) {
        if self.num_spinning.load(Relaxed) == 0 && self.num_parked.load(Relaxed) > 0 {
            self.unpark_one();
        }
    }

    /// Unparks a parked vCPU, the timed parker last (it keeps watching the timers).
    fn unpark_one(&self) -> bool {
        let timed = self.timed_parker.load(Relaxed).wrapping_sub(1);
        let others = (0..self.vcpus.len()).filter(|&i| i != timed);
        others.chain((timed < self.vcpus.len()).then_some(timed)).any(|i| self.unpark(i))
    }

    /// Unparks vCPU `i` if it is parked.
    fn unpark(&self, i: usize) -> bool {
        let slot = &self.vcpus[i];
        if slot.state.load(Relaxed) != PARKED
            || slot.state.compare_exchange(PARKED, NOTIFIED, SeqCst, Relaxed).is_err()
        {
            return false;
        }
        self.num_parked.fetch_sub(1, SeqCst);
        if let Some(t) = slot.thread.get() {
            t.unpark();
        }
        self.shard().add(|s| &s.unparks, 1);
        true
    }

    /// After a new earliest timer or a new poller: the vCPU that parks with a timeout
    /// must recompute it (if none does, any parked vCPU becomes that one).
    pub(crate) fn notify_timer(&self) {
        fence(SeqCst);
        if self.num_spinning.load(Relaxed) > 0 || self.num_parked.load(Relaxed) == 0 {
            return; // a spinner re-reads the timers; a parker reads them after announcing
        }
        match self.timed_parker.load(SeqCst) {
            // If it is already awake it reads the timers before it parks again.
            0 => {
                self.unpark_one();
            }
            t => {
                self.unpark(t - 1);
            }
        }
    }

    /// True if another vCPU could take work now (used before parking).
    fn has_visible_work(&self, me: usize) -> bool {
        !self.injector.is_empty()
            || self.vcpus.iter().enumerate().any(|(i, v)| i != me && !v.stealer.is_empty())
    }

    /// Stops the vCPUs, joins them (all but the caller, if it is one), and cancels
    /// every task left: queued ones are dropped, idle ones woken and then dropped.
    pub(crate) fn shutdown(&self) {
        if self.shutdown.swap(true, SeqCst) {
            return;
        }
        fence(SeqCst);
        for slot in self.vcpus.iter() {
            if slot.state.swap(NOTIFIED, SeqCst) == PARKED {
                self.num_parked.fetch_sub(1, SeqCst);
                self.shard().add(|s| &s.unparks, 1);
            }
            if let Some(t) = slot.thread.get() {
                t.unpark();
            }
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let me = thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        self.drain_injector();
        for waker in self.registry.drain() {
            waker.wake();
        }
        self.drain_injector();
        self.pollers.clear();
    }
}
