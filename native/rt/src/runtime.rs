//! [`Runtime`] (the handle), [`Builder`], `block_on`, [`current`].

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::thread;
use std::time::Duration;

use crossbeam_deque::Worker;

use crate::counters::RuntimeStats;
use crate::park::{poll_until_ready, Signal};
use crate::poller::{Poller, PollerId};
use crate::sched::{self, Shared};
use crate::scope::Scope;
use crate::task::{self, JoinHandle};
use crate::time::Sleep;

/// Configures a [`Runtime`].
#[derive(Clone, Debug)]
pub struct Builder {
    vcpus: usize,
    spin: Duration,
    name: String,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            vcpus: thread::available_parallelism().map_or(1, |n| n.get()),
            spin: Duration::from_micros(50),
            name: "exitless".into(),
        }
    }
}

impl Builder {
    /// Number of vCPU threads (default: the machine's parallelism).
    pub fn vcpus(mut self, n: usize) -> Self {
        self.vcpus = n;
        self
    }

    /// How long an idle vCPU (or `block_on` caller) spins before parking (default 50 µs).
    pub fn spin_before_park(mut self, d: Duration) -> Self {
        self.spin = d;
        self
    }

    /// Thread name prefix: vCPUs are `<name>-vcpu-N` (default "exitless").
    pub fn name(mut self, s: &str) -> Self {
        self.name = s.into();
        self
    }

    /// Starts the vCPU threads.
    pub fn build(self) -> io::Result<Runtime> {
        if self.vcpus == 0 || self.vcpus > usize::from(u16::MAX) - 1 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "vcpus must be in 1..65535"));
        }
        let workers: Vec<_> = (0..self.vcpus).map(|_| Worker::new_fifo()).collect();
        let stealers = workers.iter().map(Worker::stealer).collect();
        let shared = Arc::new(Shared::new(self.name, self.spin, stealers));
        for (i, worker) in workers.into_iter().enumerate() {
            let s = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-vcpu-{i}", shared.name))
                .spawn(move || sched::vcpu_main(s, i, worker));
            match spawned {
                Ok(h) => shared.add_thread(h),
                Err(e) => {
                    shared.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(Runtime { shared })
    }
}

/// A handle to a running runtime. Clones share it; dropping the last clone (or
/// calling [`shutdown`](Self::shutdown)) stops it.
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// A [`Builder`] with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        shared.handles.fetch_add(1, Ordering::Relaxed);
        Self { shared }
    }

    /// Spawns a task. On a vCPU of this runtime it goes to that vCPU's queue (run next),
    /// elsewhere to the shared injector. Dropping the handle cancels the task.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(&self.shared, fut)
    }

    /// Runs `fut` to completion on the calling thread, which must not be a vCPU.
    /// Several threads may do this at once. While waiting, the thread spins for
    /// `spin_before_park`, then parks (counted as exits).
    ///
    /// # Panics
    /// On a vCPU thread (it would stall that vCPU's queue: `.await` instead).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        assert!(!sched::on_vcpu(), "Runtime::block_on on a vCPU thread: .await the future instead");
        let _enter = sched::enter(self.shared.clone(), None);
        poll_until_ready(fut, Signal::new(Some(self.shared.clone())), |signal| {
            if self.shared.is_shutdown() {
                // No vCPU drives timers any more: this thread does, for its own sleeps.
                signal.wait(Duration::ZERO, self.drive_timers_after_shutdown());
            } else {
                signal.wait(self.shared.spin, None);
            }
        })
    }

    fn drive_timers_after_shutdown(&self) -> Option<Duration> {
        let shared = &self.shared;
        let now = shared.now_ns();
        let mut fired = Vec::new();
        shared.timers.fire(now, &mut fired);
        fired.into_iter().for_each(Waker::wake);
        shared.timers.next_deadline().map(|d| Duration::from_nanos(d.saturating_sub(now)))
    }

    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller's stack, like
    /// `std::thread::scope`: returns only once every task spawned in it finished, even
    /// if `f` panics (then the panic is resumed). If a task panicked and its handle was
    /// not joined, this panics after all tasks finished.
    ///
    /// # Panics
    /// On a vCPU thread (it blocks), and as said above.
    pub fn scope<'env, R>(&self, f: impl for<'s> FnOnce(&'s Scope<'s, 'env>) -> R) -> R {
        assert!(!sched::on_vcpu(), "Runtime::scope on a vCPU thread would block it");
        crate::scope::run(&self.shared, f)
    }

    /// Number of vCPU threads.
    pub fn vcpus(&self) -> usize {
        self.shared.vcpus()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.counters.snapshot()
    }

    /// Registers a poller; every vCPU calls it from now on (see [`Poller`]).
    pub fn add_poller(&self, poller: Arc<dyn Poller>) -> PollerId {
        let id = self.shared.pollers.add(poller);
        // Some parked vCPU must start waking up to poll.
        self.shared.notify_timer();
        id
    }

    /// Unregisters a poller. A vCPU in the middle of a pass may still call it once;
    /// its `Arc` is released by each vCPU on its next pass.
    pub fn remove_poller(&self, id: PollerId) {
        self.shared.pollers.remove(id);
    }

    /// Stops the runtime now, whatever other clones exist: stops and joins the vCPUs
    /// and drops every pending task (their handles report `Cancelled`).
    pub fn shutdown(self) {
        self.shared.shutdown();
    }

    /// A future that completes `d` from now (timers are driven by this runtime's vCPUs).
    pub fn sleep(&self, d: Duration) -> Sleep {
        Sleep::new(self.shared.clone(), d)
    }
}

impl Clone for Runtime {
    fn clone(&self) -> Self {
        Self::from_shared(self.shared.clone())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.shutdown();
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("name", &self.shared.name).field("vcpus", &self.vcpus()).finish()
    }
}

/// The runtime of the calling vCPU thread or `block_on` call, if any.
pub fn current() -> Option<Runtime> {
    sched::current_shared().map(Runtime::from_shared)
}
