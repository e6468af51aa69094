//! [`UringBackend`]: io_uring with an SQPOLL kernel thread and registered buffers in
//! untrusted memory, so steady-state IO makes no system call (no enclave exit).
//!
//! - The ring, its queues and the buffer pool sit outside the enclave; every backend
//!   attaches to one process-wide SQPOLL thread (`IORING_SETUP_ATTACH_WQ`), so a
//!   thousand streams cost one kernel thread, not a thousand.
//! - Submitting is a store to the SQ tail; `io_uring_enter` runs only to wake a
//!   sleeping SQPOLL thread (`IORING_SQ_NEED_WAKEUP`) or to block after spinning.
//!   Each such call is counted as an exit.
//! - Every completion passes [`crate::validate`] first. A rejected completion poisons
//!   the backend: the stream fails with an error, never a panic or a silent short write.
//! - The trusted bookkeeping (slot layout, `user_data`, resubmitting short transfers)
//!   is [`crate::ring::RingSlots`], pure logic; this module adds the ring and syscalls.
//! - A file's whole life runs on the ring too ([`FileOp`]: `OPENAT`, `CLOSE`,
//!   `UNLINKAT`, `STATX`, `FTRUNCATE`, `FALLOCATE`, and `FSYNC`), its path and `statx`
//!   buffer in the region's control area, so writing, reading back and deleting a
//!   small spill file makes no exit beyond SQPOLL wake-ups. Files are plain
//!   descriptors, not registered ones: a stream moves between pooled rings (it
//!   coalesces once long), `STATX` refuses a registered file, and registering one
//!   costs an `io_uring_register` (an exit) per file; an unregistered file costs
//!   the kernel a reference count per IO instead.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use crate::backend::{Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput, OpKind};
use crate::error::{RejectedCompletion, Reporter};
use crate::faults::{self, Fault, FaultPlan, Injection};
use crate::ring::{
    parse_statx, RingSlots, Step, SubmitOp, CONTROL_PATH, CONTROL_STATX, STATX_LEN, STATX_WANTED,
};
use crate::untrusted::UntrustedRegion;
use crate::validate::{check_ring, Rejected};

/// `IORING_ENTER_GETEVENTS`: wait for completions.
const ENTER_GETEVENTS: u32 = 1;
/// `IORING_ENTER_SQ_WAKEUP`: wake the SQPOLL thread.
const ENTER_SQ_WAKEUP: u32 = 2;

/// How to build a [`UringBackend`].
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Slots (operations in flight); also the ring size.
    pub depth: usize,
    /// Bytes per slot buffer (rounded up to whole pages).
    pub buffer_len: usize,
    /// Use an SQPOLL kernel thread (no syscall to submit).
    pub sqpoll: bool,
    /// Milliseconds the SQPOLL thread spins idle before it sleeps.
    pub sq_idle_ms: u32,
    /// How long `wait` spins on the completion queue before it blocks in the kernel.
    pub spin: Duration,
    /// What each exit (`io_uring_enter`) costs, charged as the OCALL path charges
    /// its own (inside an enclave an enter is an OCALL; set 0 cycles there, where
    /// the exit is real). `None`: exits are counted, not charged.
    pub exit_model: Option<crate::model::OcallModel>,
}

impl UringConfig {
    /// Defaults: SQPOLL by [`sqpoll_default`] with [`sq_idle_ms`] idle, and a 100 µs spin before blocking
    /// (`EXITLESS_URING_SPIN_US` overrides it). Inside an enclave a block is an exit,
    /// so with spare cores a longer spin (10 ms) keeps even IO-bound streams
    /// exit-less; on a 2-core machine a long spin starves the kernel work that
    /// completes the IO (see docs/BENCHMARKS.md).
    pub fn new(depth: usize, buffer_len: usize) -> Self {
        let spin_us = env_u64("EXITLESS_URING_SPIN_US").unwrap_or(DEFAULT_SPIN_US);
        Self {
            depth,
            buffer_len,
            sqpoll: sqpoll_default(),
            exit_model: None,
            sq_idle_ms: sq_idle_ms(),
            spin: Duration::from_micros(spin_us),
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Whether rings use an SQPOLL thread: `EXITLESS_URING_SQPOLL` (0 or 1), else only
/// where [`SQPOLL_MIN_CPUS`] or more CPUs are available to the process.
///
/// The SQPOLL thread makes submitting free of exits, and spins a core while streams
/// run. With cores to spare (an enclave's host) that is the exit-less path; with
/// two, the spinning thread takes half the machine from the application and the
/// kernel's IO workers: measured here, a ring without it wrote 1.1–1.4× as fast and
/// a PySpark job's sealed spills cost −1% instead of +56% (docs/BENCHMARKS.md,
/// "SQPOLL on two cores"). Without one, every `io_uring_enter` is an exit (reads
/// and writes are batched into the enters that wait), and IO in flight belongs to
/// the thread that submitted it (the kernel cancels it if that thread ends first),
/// so streams let none stay in flight past a call ([`Backend::thread_bound`]).
pub fn sqpoll_default() -> bool {
    match env_u64("EXITLESS_URING_SQPOLL") {
        Some(v) => v != 0,
        None => available_cpus() >= SQPOLL_MIN_CPUS,
    }
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How long the SQPOLL thread spins idle before it sleeps: `EXITLESS_URING_SQ_IDLE_MS`,
/// else [`DEFAULT_SQ_IDLE_MS`] where [`SQPOLL_MIN_CPUS`] or more CPUs are available
/// to the process and [`SHORT_SQ_IDLE_MS`] where fewer are. The thread spins a core
/// while it waits: with cores to spare (an enclave's host) a long wait saves the
/// wake-up (an exit) of the next burst; with two, every millisecond it spins is
/// taken from the application and the kernel's IO workers (docs/BENCHMARKS.md,
/// "SQPOLL on two cores").
pub fn sq_idle_ms() -> u32 {
    match env_u64("EXITLESS_URING_SQ_IDLE_MS") {
        Some(v) => v.min(60_000) as u32,
        None if available_cpus() >= SQPOLL_MIN_CPUS => DEFAULT_SQ_IDLE_MS,
        None => SHORT_SQ_IDLE_MS,
    }
}

/// Without SQPOLL, whether reads and writes wait for the next waiting enter
/// (`EXITLESS_URING_BATCH`, 0 or 1; default 1): one exit for many.
fn batch_default() -> bool {
    static BATCH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BATCH.get_or_init(|| env_u64("EXITLESS_URING_BATCH").is_none_or(|v| v != 0))
}

/// Fewest CPUs for which rings have an SQPOLL thread by default, idling
/// [`DEFAULT_SQ_IDLE_MS`].
pub const SQPOLL_MIN_CPUS: usize = 4;

/// SQPOLL idle time where fewer than [`SQPOLL_MIN_CPUS`] CPUs are available.
pub const SHORT_SQ_IDLE_MS: u32 = 2;

/// Default SQPOLL idle time, in milliseconds.
pub const DEFAULT_SQ_IDLE_MS: u32 = 1000;

/// Default spin before `wait` blocks, in microseconds.
pub const DEFAULT_SPIN_US: u64 = 100;

/// The io_uring backend. One per stream; cheap to keep around and reuse.
pub struct UringBackend {
    // Field order matters: the ring (which the kernel may still use the buffers
    // through) is dropped before the region that backs them.
    ring: IoUring,
    region: UntrustedRegion,
    /// Trusted copies taken at setup; the shared ring header is never trusted for these.
    cq_capacity: usize,
    slots: RingSlots,
    ready: Vec<Completion>,
    /// The control op in flight, built without its `user_data` (which each push sets).
    control: Option<squeue::Entry>,
    /// Whether this kernel has `IORING_OP_FTRUNCATE` (6.9+); without it, a truncate
    /// is a system call.
    has_ftruncate: bool,
    counters: Counters,
    config: UringConfig,
    /// The completion that was rejected: the backend refuses all work since.
    poisoned: Option<RejectedCompletion>,
    faults: Option<Arc<FaultPlan>>,
    /// Per slot (and the fsync slot): the fault to inject into its next submission.
    inject: Vec<Option<Injection>>,
    /// Per slot: an injected errno fault or forgery in flight as a NOP, `(user_data, result)`:
    /// its completion's result is replaced by this one.
    forced: Vec<Option<(u64, i32)>>,
}

/// The process-wide SQPOLL anchor ring other rings attach to, and the ring the
/// probe ([`crate::probe`]) looks at. Kept for the life of the process; `None` when
/// it could not be created (then rings stand alone, and io_uring is unavailable).
///
/// Never closed, and no ring is set up only to be closed: closing a ring makes the
/// kernel interrupt the threads that used it once, later (its exit work is queued as
/// signal-like task work), and a blocking `write` to a pipe or socket interrupted
/// after some bytes returns short. CPython's buffered writers pass that short count
/// on, and callers that ignore it (`shutil.copyfileobj`) lose data.
///
/// A forked child makes its own: the inherited anchor's SQPOLL thread belongs to
/// the parent and ends with it. The inherited ring is leaked, not closed, so the
/// parent's keeps working.
pub(crate) fn with_anchor<R>(f: impl FnOnce(Option<&IoUring>) -> R) -> R {
    static ANCHOR: Mutex<Option<(u32, Option<IoUring>)>> = Mutex::new(None);
    let mut anchor = ANCHOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pid = std::process::id();
    if anchor.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let fresh = (pid, IoUring::builder().setup_sqpoll(sq_idle_ms()).build(2).ok());
        if let Some(inherited) = anchor.replace(fresh) {
            std::mem::forget(inherited);
        }
    }
    f(anchor.as_ref().and_then(|(_, ring)| ring.as_ref()))
}

fn anchor_fd() -> Option<RawFd> {
    with_anchor(|ring| ring.map(AsRawFd::as_raw_fd))
}

impl UringBackend {
    /// Sets up the ring, maps and registers the buffer pool.
    pub fn new(config: UringConfig) -> io::Result<Self> {
        let slots = RingSlots::new(config.depth, config.buffer_len)?;
        let slot_len = slots.slot_len();
        let mut counters = Counters::default();
        let ring = Self::build_ring(&config, slots.sq_entries(), &mut counters)?;
        let region = UntrustedRegion::new(slots.region_len())?;
        let iovecs: Vec<libc::iovec> = (0..config.depth)
            .map(|i| libc::iovec {
                iov_base: region.kernel_addr(i * slot_len, slot_len).addr().cast(),
                iov_len: slot_len,
            })
            .collect();
        // SAFETY: NOTE: the iovecs describe `region`, which this backend owns and keeps
        // mapped for as long as the ring exists (the ring field is dropped first), and
        // whose bytes are only touched through copies while no op uses the slot.
        unsafe { ring.submitter().register_buffers(&iovecs) }?;
        let mut probe = io_uring::Probe::new();
        let has_ftruncate = ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::Ftruncate::CODE);
        counters.syscalls += 2;
        let cq_capacity = ring.params().cq_entries() as usize;
        Ok(Self {
            ring,
            region,
            cq_capacity,
            slots,
            ready: Vec::with_capacity(config.depth + 1),
            control: None,
            has_ftruncate,
            counters,
            poisoned: None,
            faults: None,
            inject: vec![None; config.depth + 1],
            forced: vec![None; config.depth + 1],
            config,
        })
    }

    fn build_ring(config: &UringConfig, entries: u32, counters: &mut Counters) -> io::Result<IoUring> {
        counters.syscalls += 1;
        if !config.sqpoll {
            return IoUring::builder().build(entries);
        }
        if let Some(anchor) = anchor_fd() {
            if let Ok(ring) =
                IoUring::builder().setup_sqpoll(config.sq_idle_ms).setup_attach_wq(anchor).build(entries)
            {
                return Ok(ring);
            }
        }
        IoUring::builder().setup_sqpoll(config.sq_idle_ms).build(entries)
    }

    /// Whether the ring really runs with an SQPOLL thread.
    pub fn is_sqpoll(&self) -> bool {
        self.ring.params().is_setup_sqpoll()
    }

    fn check_poison(&self) -> io::Result<()> {
        match self.poisoned {
            Some(rejected) => Err(rejected.again().into()),
            None => Ok(()),
        }
    }

    /// Counts a completion the validator rejected and disables the backend: the
    /// error ([`RejectedCompletion`]) is this call's and every later call's.
    fn reject(&mut self, why: Rejected) -> io::Error {
        self.counters.completions_rejected += 1;
        let rejected = RejectedCompletion::new(Reporter::Kernel, why);
        self.poisoned = Some(rejected);
        rejected.into()
    }

    /// Queues the (remaining part of the) op recorded on `slot` and makes it visible
    /// to the kernel.
    fn push(&mut self, slot: usize) -> io::Result<()> {
        let fd = types::Fd(self.slots.fd(slot).expect("op recorded before push"));
        let sub = self.slots.submit(slot);
        // `RingSlots` keeps `buf_offset + len` within the slot's registered buffer.
        let buf = || self.region.kernel_addr(sub.buf_offset, sub.len as usize).addr();
        // An injected fault: an errno, or a forgery, goes in as a NOP whose result
        // `process` replaces (before validation, as if the kernel had written it); a
        // short transfer asks the kernel for part of the bytes.
        let mut len = sub.len;
        let forced = match self.inject[slot].take() {
            Some(Injection::Fault(Fault::Errno(errno))) => Some(-errno),
            // One byte more than was asked for, as a hostile kernel would claim (a
            // data slot holds far less than 2 GiB; else an impossible errno).
            Some(Injection::Forge) => Some(i32::try_from(u64::from(sub.len) + 1).unwrap_or(i32::MIN)),
            Some(Injection::Fault(Fault::Short)) => {
                len = Fault::short_len(len as usize) as u32;
                None
            }
            None => None,
        };
        if let Some(result) = forced {
            self.forced[slot] = Some((sub.user_data, result));
            let entry = opcode::Nop::new().build().user_data(sub.user_data);
            // SAFETY: a NOP refers to no memory.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                return Err(io::Error::other("submission queue full"));
            }
            return self.kick();
        }
        let entry = match sub.op {
            SubmitOp::Control => self.control.clone().expect("a control op built before its push"),
            SubmitOp::WriteFixed => {
                opcode::WriteFixed::new(fd, buf(), len, sub.buf_index).offset(sub.file_offset).build()
            }
            SubmitOp::ReadFixed => {
                opcode::ReadFixed::new(fd, buf(), len, sub.buf_index).offset(sub.file_offset).build()
            }
        }
        .user_data(sub.user_data)
        .flags(squeue::Flags::empty());
        // SAFETY: NOTE: the entry points into the registered region (a data slot, or
        // the control area), or at nothing, and the region outlives the op: the slot
        // stays busy in `slots` until its completion is reaped, and no copy touches a
        // busy slot or, while a control op is in flight, the control area.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Cannot happen: at most depth + 1 ops are in flight and the SQ is larger.
            return Err(io::Error::other("submission queue full"));
        }
        self.kick()
    }

    /// Publishes queued entries: with SQPOLL, a syscall only if the thread sleeps.
    /// Without SQPOLL, reads and writes are batched: they go in with the next
    /// `io_uring_enter` that waits (or polls) for completions, one exit for many; a
    /// control op goes in at once, waiting for its completion in the same call.
    fn kick(&mut self) -> io::Result<()> {
        let sqpoll = self.is_sqpoll();
        let control = self.control.is_some() && self.slots.is_busy(self.slots.control_slot());
        if !sqpoll && !control && batch_default() {
            return Ok(());
        }
        let mut sq = self.ring.submission();
        sq.sync();
        let wake = !sqpoll || sq.need_wakeup();
        let pending = sq.len() as u32;
        drop(sq);
        if wake {
            let wait = !sqpoll && control;
            let flags = match (sqpoll, wait) {
                (true, _) => ENTER_SQ_WAKEUP,
                (false, true) => ENTER_GETEVENTS,
                (false, false) => 0,
            };
            let to_submit = if sqpoll { 0 } else { pending };
            let min_complete = u32::from(wait);
            // SAFETY: no argument pointer is passed; the flags are plain enter flags.
            match unsafe {
                self.ring.submitter().enter::<libc::sigset_t>(to_submit, min_complete, flags, None)
            } {
                // Interrupted before submitting: the entries stay queued, and the
                // next wait's enter submits them.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.count_enter(sqpoll);
        }
        Ok(())
    }

    fn count_enter(&mut self, wakeup: bool) {
        if let Some(model) = &self.config.exit_model {
            model.charge(1);
        }
        self.counters.uring_enters += 1;
        self.counters.syscalls += 1;
        self.counters.exits += 1;
        if wakeup {
            self.counters.sqpoll_wakeups += 1;
        }
    }

    /// Drains the completion queue through the validator.
    fn reap(&mut self) -> io::Result<()> {
        let mut batch = [(0u64, 0i32); 64];
        loop {
            let mut cq = self.ring.completion();
            let available = cq.len();
            if let Err(why) = check_ring(available, self.cq_capacity) {
                drop(cq);
                return Err(self.reject(why));
            }
            let mut n = 0;
            for cqe in cq.by_ref().take(batch.len()) {
                batch[n] = (cqe.user_data(), cqe.result());
                n += 1;
            }
            cq.sync();
            drop(cq);
            if n == 0 {
                return Ok(());
            }
            for &(user_data, result) in &batch[..n] {
                self.process(user_data, result)?;
            }
        }
    }

    /// One completion, validated, then applied: finished, resubmitted, or failed.
    fn process(&mut self, user_data: u64, result: i32) -> io::Result<()> {
        // The completion of an injected fault's NOP carries the fault's result.
        let slot = (user_data & u64::from(u32::MAX)) as usize;
        let result = match self.forced.get_mut(slot) {
            Some(forced) if forced.is_some_and(|(ud, _)| ud == user_data) => {
                forced.take().map_or(result, |(_, r)| r)
            }
            _ => result,
        };
        match self.slots.complete(user_data, result, &mut self.counters) {
            Ok(Step::Finished(c)) => {
                self.ready.push(c);
                Ok(())
            }
            Ok(Step::Resubmit(slot)) => self.push(slot),
            Err(why) => Err(self.reject(why)),
        }
    }

    /// Blocks until the slot table is empty (used by fsync and drop).
    fn drain(&mut self) -> io::Result<Vec<Completion>> {
        let mut out = Vec::new();
        while self.slots.in_flight() > 0 {
            self.wait(&mut out)?;
        }
        Ok(out)
    }

    /// Spins while the wait is young, then blocks in the kernel for a completion
    /// (an exit, counted).
    fn idle(&mut self, started: Instant) -> io::Result<()> {
        // Without SQPOLL, entries still queued (batched, or left by an interrupted
        // kick) go in with this enter: nothing to spin for before.
        let to_submit = if self.is_sqpoll() { 0 } else { self.ring.submission().len() as u32 };
        if to_submit == 0 && started.elapsed() < self.config.spin {
            std::hint::spin_loop();
            return Ok(());
        }
        // SAFETY: no argument pointer; GETEVENTS with min_complete 1 only blocks.
        match unsafe { self.ring.submitter().enter::<libc::sigset_t>(to_submit, 1, ENTER_GETEVENTS, None) } {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.count_enter(false);
        Ok(())
    }

    /// Runs `entry` on the control slot to its end; its result may be at most
    /// `max_result`. Data completions that arrive meanwhile wait for `wait`.
    fn run_control(
        &mut self,
        fd: RawFd,
        max_result: u32,
        entry: squeue::Entry,
        fault: Option<Fault>,
    ) -> io::Result<u32> {
        self.check_poison()?;
        let slot = self.slots.begin_control(fd, max_result);
        self.control = Some(entry);
        self.inject[slot] = fault.map(Injection::Fault);
        self.push(slot)?;
        let started = Instant::now();
        loop {
            self.reap()?;
            if let Some(i) = self.ready.iter().position(|c| c.slot == slot) {
                self.control = None;
                // `RingSlots` bounds a control result by `max_result` ≤ u32::MAX.
                return self.ready.remove(i).result.map(|n| n as u32);
            }
            self.idle(started)?;
        }
    }

    /// Copies `path` (with its NUL) into the control area; returns its address there.
    fn place_path(&mut self, path: &std::ffi::CStr) -> io::Result<*const libc::c_char> {
        let bytes = path.to_bytes_with_nul();
        if bytes.len() > CONTROL_STATX - CONTROL_PATH {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let at = self.slots.control_bytes(CONTROL_PATH, bytes.len());
        self.region.copy_in(at, bytes);
        Ok(self.region.kernel_addr(at, bytes.len()).addr().cast_const().cast())
    }

    /// Test hook: feeds one completion as if the kernel had written it, through the
    /// same validation as real ones.
    #[doc(hidden)]
    pub fn inject_completion(&mut self, user_data: u64, result: i32) -> io::Result<()> {
        self.process(user_data, result)
    }

    /// Test hook: the completion ring claims `available` entries.
    #[doc(hidden)]
    pub fn inject_ring_fill(&mut self, available: usize) -> io::Result<()> {
        check_ring(available, self.cq_capacity).map_err(|why| self.reject(why))
    }

    /// Test hook: the `user_data` of the op in flight on `slot`.
    #[doc(hidden)]
    pub fn in_flight_user_data(&self, slot: usize) -> Option<u64> {
        self.slots.user_data(slot)
    }
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }

    fn depth(&self) -> usize {
        self.slots.depth()
    }

    fn buffer_len(&self) -> usize {
        self.slots.slot_len()
    }

    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
        self.check_poison()?;
        let at = self.slots.stage_offset(slot, at, data.len())?;
        self.region.copy_in(at, data);
        Ok(())
    }

    fn write_staged(
        &mut self,
        slot: usize,
        fd: RawFd,
        offset: u64,
        len: usize,
        pad_to: usize,
    ) -> io::Result<()> {
        self.check_poison()?;
        let total = len.max(pad_to);
        let at = self.slots.begin(slot, OpKind::Write, fd, offset, total)?;
        if total > len {
            self.region.zero(at + len, total - len);
        }
        self.inject[slot] = faults::next_injection(&self.faults, OpKind::Write);
        self.push(slot)
    }

    fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.check_poison()?;
        self.slots.begin(slot, OpKind::Read, fd, offset, len)?;
        self.inject[slot] = faults::next_injection(&self.faults, OpKind::Read);
        self.push(slot)
    }

    fn read_some(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.check_poison()?;
        self.slots.begin_some(slot, fd, offset, len)?;
        self.inject[slot] = faults::next_injection(&self.faults, OpKind::Read);
        self.push(slot)
    }

    fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]) {
        let at = self.slots.copy_out_offset(slot, at, out.len());
        self.region.copy_out(at, out);
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.check_poison()?;
        let started = Instant::now();
        loop {
            self.reap()?;
            if !self.ready.is_empty() || self.slots.in_flight() == 0 {
                out.append(&mut self.ready);
                return Ok(());
            }
            self.idle(started)?;
        }
    }

    fn try_wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.check_poison()?;
        let queued = if self.is_sqpoll() { 0 } else { self.ring.submission().len() as u32 };
        if queued > 0 {
            // Batched entries go in now, without waiting (one exit).
            // SAFETY: no argument pointer; plain submit.
            match unsafe { self.ring.submitter().enter::<libc::sigset_t>(queued, 0, 0, None) } {
                Ok(_) => self.count_enter(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.reap()?;
        out.append(&mut self.ready);
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.slots.in_flight()
    }

    fn thread_bound(&self) -> bool {
        !self.is_sqpoll()
    }

    fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
        let fault = self.faults.as_ref().and_then(|p| p.next_fsync()).filter(|f| *f != Fault::Short);
        let result = self.run_control(fd, 0, opcode::Fsync::new(types::Fd(fd)).build(), fault);
        self.counters.ops += 1;
        result.map(drop)
    }

    fn file_op(&mut self, op: FileOp<'_>) -> io::Result<FileOpOutput> {
        self.check_poison()?;
        if matches!(op, FileOp::Truncate(..)) && !self.has_ftruncate {
            return crate::files::counted(op, &mut self.counters, 1);
        }
        self.counters.file_ops += 1;
        let at_cwd = types::Fd(libc::AT_FDCWD);
        match op {
            FileOp::Open { path, flags, mode } => {
                let path = self.place_path(path)?;
                let entry =
                    opcode::OpenAt::new(at_cwd, path).flags(flags | libc::O_CLOEXEC).mode(mode).build();
                let fd = self.run_control(-1, i32::MAX as u32, entry, None)?;
                // At most i32::MAX: `RingSlots` checked it.
                Ok(FileOpOutput::Fd(fd as RawFd))
            }
            FileOp::Close(fd) => {
                let entry = opcode::Close::new(types::Fd(fd)).build();
                self.run_control(fd, 0, entry, None).map(|_| FileOpOutput::Done)
            }
            FileOp::Unlink(path) => {
                let path = self.place_path(path)?;
                let entry = opcode::UnlinkAt::new(at_cwd, path).build();
                self.run_control(-1, 0, entry, None).map(|_| FileOpOutput::Done)
            }
            FileOp::Stat(fd) => {
                let empty = self.place_path(c"")?;
                let at = self.slots.control_bytes(CONTROL_STATX, STATX_LEN);
                let buf = self.region.kernel_addr(at, STATX_LEN).addr().cast();
                let entry = opcode::Statx::new(types::Fd(fd), empty, buf)
                    .flags(libc::AT_EMPTY_PATH)
                    .mask(STATX_WANTED)
                    .build();
                self.run_control(fd, 0, entry, None)?;
                // The kernel wrote the buffer (untrusted): copied out once, then checked.
                let mut raw = [0u8; STATX_LEN];
                self.region.copy_out(at, &mut raw);
                Ok(FileOpOutput::Stat(parse_statx(&raw)?))
            }
            FileOp::Truncate(fd, len) => {
                let entry = opcode::Ftruncate::new(types::Fd(fd), len).build();
                self.run_control(fd, 0, entry, None).map(|_| FileOpOutput::Done)
            }
            FileOp::Allocate(fd, offset, len) => {
                let entry = opcode::Fallocate::new(types::Fd(fd), len).offset(offset).build();
                self.run_control(fd, 0, entry, None).map(|_| FileOpOutput::Done)
            }
        }
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn set_faults(&mut self, plan: Option<Arc<FaultPlan>>) -> bool {
        self.faults = plan;
        true
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // Let in-flight ops finish before the buffers go away (they are pinned by the
        // registration anyway; this keeps the teardown orderly).
        if self.poisoned.is_none() {
            let _ = self.drain();
        }
    }
}
