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

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use crate::backend::{Backend, BackendKind, Completion, Counters, OpKind};
use crate::untrusted::{UntrustedRegion, PAGE};
use crate::validate::{check_ring, Outcome, Rejected, SlotTable};

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
    /// Open regular files with O_DIRECT (aligned IO, no page cache, no io-wq punting).
    pub direct: bool,
}

impl UringConfig {
    /// Defaults: SQPOLL with 1 s idle, O_DIRECT, and a 100 µs spin before blocking
    /// (`EXITLESS_URING_SPIN_US` overrides it). Inside an enclave a block is an exit,
    /// so with spare cores a longer spin (10 ms) keeps even IO-bound streams
    /// exit-less; on a 2-core machine a long spin starves the kernel work that
    /// completes the IO (see docs/BENCHMARKS.md).
    pub fn new(depth: usize, buffer_len: usize) -> Self {
        let spin_us = std::env::var("EXITLESS_URING_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPIN_US);
        Self {
            depth,
            buffer_len,
            sqpoll: true,
            sq_idle_ms: 1000,
            spin: Duration::from_micros(spin_us),
            direct: true,
        }
    }
}

/// Default spin before `wait` blocks, in microseconds.
pub const DEFAULT_SPIN_US: u64 = 100;

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    fd: RawFd,
    offset: u64,
    len: usize,
    done: usize,
}

/// The io_uring backend. One per stream; cheap to keep around and reuse.
pub struct UringBackend {
    // Field order matters: the ring (which the kernel may still use the buffers
    // through) is dropped before the region that backs them.
    ring: IoUring,
    region: UntrustedRegion,
    slot_len: usize,
    depth: usize,
    /// Trusted copies taken at setup; the shared ring header is never trusted for these.
    cq_capacity: usize,
    table: SlotTable,
    ops: Vec<Option<Op>>,
    ready: Vec<Completion>,
    /// The registered file (one fixed-file slot), updated when the fd changes.
    fixed_fd: Option<RawFd>,
    counters: Counters,
    config: UringConfig,
    poisoned: Option<String>,
}

/// The process-wide SQPOLL anchor ring other rings attach to. Kept for the life of
/// the process; `None` when it could not be created (then rings stand alone).
///
/// A forked child makes its own: the inherited anchor's SQPOLL thread belongs to
/// the parent and ends with it. The inherited ring is leaked, not closed, so the
/// parent's keeps working.
fn anchor_fd() -> Option<RawFd> {
    static ANCHOR: Mutex<Option<(u32, Option<IoUring>)>> = Mutex::new(None);
    let mut anchor = ANCHOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pid = std::process::id();
    if anchor.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let fresh = (pid, IoUring::builder().setup_sqpoll(1000).build(2).ok());
        if let Some(inherited) = anchor.replace(fresh) {
            std::mem::forget(inherited);
        }
    }
    anchor.as_ref().and_then(|(_, ring)| ring.as_ref()).map(|r| r.as_raw_fd())
}

impl UringBackend {
    /// Sets up the ring, maps and registers the buffer pool, reserves a fixed-file slot.
    pub fn new(config: UringConfig) -> io::Result<Self> {
        if config.depth == 0 || config.depth > 4096 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "queue depth must be 1 to 4096"));
        }
        let slot_len = config.buffer_len.max(1).div_ceil(PAGE) * PAGE;
        if slot_len > u32::MAX as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer too large for io_uring"));
        }
        let entries = (config.depth as u32 + 1).next_power_of_two();
        let mut counters = Counters::default();
        let ring = Self::build_ring(&config, entries, &mut counters)?;
        let region = UntrustedRegion::new(slot_len * config.depth)?;
        let iovecs: Vec<libc::iovec> = (0..config.depth)
            .map(|i| libc::iovec {
                // SAFETY: `i * slot_len` is within the region (depth slots of slot_len bytes).
                iov_base: unsafe { region.as_ptr().add(i * slot_len) }.cast(),
                iov_len: slot_len,
            })
            .collect();
        // SAFETY: NOTE: the iovecs describe `region`, which this backend owns and keeps
        // mapped for as long as the ring exists (the ring field is dropped first), and
        // whose bytes are only touched through copies while no op uses the slot.
        unsafe { ring.submitter().register_buffers(&iovecs) }?;
        ring.submitter().register_files_sparse(1)?;
        counters.syscalls += 2;
        let cq_capacity = ring.params().cq_entries() as usize;
        Ok(Self {
            ring,
            region,
            slot_len,
            depth: config.depth,
            cq_capacity,
            table: SlotTable::new(config.depth + 1), // the extra slot carries fsync
            ops: vec![None; config.depth + 1],
            ready: Vec::with_capacity(config.depth + 1),
            fixed_fd: None,
            counters,
            config,
            poisoned: None,
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
        match &self.poisoned {
            Some(why) => {
                Err(io::Error::new(io::ErrorKind::InvalidData, format!("io_uring backend disabled: {why}")))
            }
            None => Ok(()),
        }
    }

    fn reject(&mut self, why: Rejected) -> io::Error {
        self.counters.completions_rejected += 1;
        let msg = format!("rejected a completion from the kernel: {why}");
        self.poisoned = Some(msg.clone());
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    fn fixed(&self, fd: RawFd) -> io::Result<types::Fixed> {
        match self.fixed_fd {
            Some(attached) if attached == fd => Ok(types::Fixed(0)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is not attached to this ring"),
            )),
        }
    }

    fn update_fixed(&mut self, fd: RawFd) -> io::Result<()> {
        self.ring.submitter().register_files_update(0, &[fd])?;
        self.counters.syscalls += 1;
        self.counters.exits += 1;
        Ok(())
    }

    fn slot_free(&self, slot: usize) -> io::Result<()> {
        if slot >= self.depth {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("slot {slot} out of range")));
        }
        if self.table.is_busy(slot) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("slot {slot} is in flight")));
        }
        Ok(())
    }

    /// Queues the (remaining part of the) op in `slot` and makes it visible to the kernel.
    fn push(&mut self, slot: usize) -> io::Result<()> {
        let op = self.ops[slot].expect("op recorded before push");
        let fd = self.fixed(op.fd)?;
        let remaining = (op.len - op.done) as u32;
        let user_data = self.table.start(slot, remaining);
        let entry = if slot == self.depth {
            opcode::Fsync::new(fd).build()
        } else {
            // SAFETY: `slot < depth`, and `op.done ≤ op.len ≤ slot_len`: the address is
            // inside the slot's registered buffer.
            let buf = unsafe { self.region.as_ptr().add(slot * self.slot_len + op.done) };
            let at = op.offset + op.done as u64;
            match op.kind {
                OpKind::Write => opcode::WriteFixed::new(fd, buf, remaining, slot as u16).offset(at).build(),
                OpKind::Read => opcode::ReadFixed::new(fd, buf, remaining, slot as u16).offset(at).build(),
            }
        }
        .user_data(user_data)
        .flags(squeue::Flags::empty());
        // SAFETY: NOTE: the entry points into the registered region (or at nothing, for
        // fsync), which outlives the op: the slot stays busy in `table` until its
        // completion is reaped, and no copy touches a busy slot.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Cannot happen: at most depth + 1 ops are in flight and the SQ is larger.
            return Err(io::Error::other("submission queue full"));
        }
        self.kick()
    }

    /// Publishes queued entries: with SQPOLL, a syscall only if the thread sleeps.
    fn kick(&mut self) -> io::Result<()> {
        let sqpoll = self.is_sqpoll();
        let mut sq = self.ring.submission();
        sq.sync();
        let wake = !sqpoll || sq.need_wakeup();
        let pending = sq.len() as u32;
        drop(sq);
        if wake {
            let flags = if sqpoll { ENTER_SQ_WAKEUP } else { 0 };
            let to_submit = if sqpoll { 0 } else { pending };
            // SAFETY: no argument pointer is passed; the flags are plain enter flags.
            unsafe { self.ring.submitter().enter::<libc::sigset_t>(to_submit, 0, flags, None) }?;
            self.count_enter(sqpoll);
        }
        Ok(())
    }

    fn count_enter(&mut self, wakeup: bool) {
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
        let outcome = match self.table.complete(user_data, result) {
            Ok(o) => o,
            Err(why) => return Err(self.reject(why)),
        };
        match outcome {
            Outcome::Done { slot, bytes } => {
                let slot = slot as usize;
                let op = self.ops[slot].as_mut().expect("validated slot has an op");
                op.done += bytes as usize;
                let finished = op.done == op.len || slot == self.depth;
                let eof = op.kind == OpKind::Read && bytes == 0;
                if finished || eof {
                    let done = op.done;
                    self.finish(slot, Ok(done));
                } else if bytes == 0 {
                    self.finish(
                        slot,
                        Err(io::Error::new(io::ErrorKind::WriteZero, "write made no progress")),
                    );
                } else {
                    self.counters.resubmits += 1;
                    self.push(slot)?;
                }
            }
            Outcome::Failed { slot, errno } => {
                let slot = slot as usize;
                if errno == libc::EINTR || errno == libc::EAGAIN {
                    self.counters.resubmits += 1;
                    self.push(slot)?;
                } else {
                    self.finish(slot, Err(io::Error::from_raw_os_error(errno)));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, slot: usize, result: io::Result<usize>) {
        if let Ok(n) = result {
            self.counters.bytes += n as u64;
        }
        self.counters.ops += 1;
        self.ready.push(Completion { slot, result });
    }

    fn start(&mut self, slot: usize, op: Op) -> io::Result<()> {
        self.ops[slot] = Some(op);
        self.push(slot)
    }

    /// Blocks until the slot table is empty (used by fsync and drop).
    fn drain(&mut self) -> io::Result<Vec<Completion>> {
        let mut out = Vec::new();
        while self.table.in_flight() > 0 {
            self.wait(&mut out)?;
        }
        Ok(out)
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
        self.table.user_data(slot)
    }
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn buffer_len(&self) -> usize {
        self.slot_len
    }

    fn write(&mut self, slot: usize, fd: RawFd, offset: u64, data: &[u8], pad_to: usize) -> io::Result<()> {
        self.check_poison()?;
        self.slot_free(slot)?;
        let len = data.len().max(pad_to);
        if len > self.slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write larger than a slot buffer"));
        }
        let at = slot * self.slot_len;
        self.region.copy_in(at, data);
        if len > data.len() {
            self.region.zero(at + data.len(), len - data.len());
        }
        self.start(slot, Op { kind: OpKind::Write, fd, offset, len, done: 0 })
    }

    fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.check_poison()?;
        self.slot_free(slot)?;
        if len > self.slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "read larger than a slot buffer"));
        }
        self.start(slot, Op { kind: OpKind::Read, fd, offset, len, done: 0 })
    }

    fn copy_out(&mut self, slot: usize, out: &mut [u8]) {
        assert!(slot < self.depth && !self.table.is_busy(slot), "copy_out from a busy or unknown slot");
        assert!(out.len() <= self.slot_len, "copy_out larger than a slot");
        self.region.copy_out(slot * self.slot_len, out);
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.check_poison()?;
        let started = Instant::now();
        loop {
            self.reap()?;
            if !self.ready.is_empty() || self.table.in_flight() == 0 {
                out.append(&mut self.ready);
                return Ok(());
            }
            if started.elapsed() < self.config.spin {
                std::hint::spin_loop();
                continue;
            }
            // SAFETY: no argument pointer; GETEVENTS with min_complete 1 only blocks.
            match unsafe { self.ring.submitter().enter::<libc::sigset_t>(0, 1, ENTER_GETEVENTS, None) } {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.count_enter(false);
        }
    }

    fn try_wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.check_poison()?;
        self.reap()?;
        out.append(&mut self.ready);
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.table.in_flight()
    }

    fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
        self.check_poison()?;
        let slot = self.depth;
        self.start(slot, Op { kind: OpKind::Write, fd, offset: 0, len: 0, done: 0 })?;
        let mut result = Ok(());
        for c in self.drain()? {
            if c.slot == slot {
                result = c.result.map(drop);
            } else {
                self.ready.push(c);
            }
        }
        result
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn prefers_direct(&self) -> bool {
        self.config.direct
    }

    fn attach(&mut self, fd: RawFd) -> io::Result<()> {
        self.check_poison()?;
        self.update_fixed(fd)?;
        self.fixed_fd = Some(fd);
        Ok(())
    }

    fn detach(&mut self) {
        if self.fixed_fd.take().is_some() && self.table.in_flight() == 0 {
            // -1 empties the fixed-file slot, dropping the ring's reference to the file.
            let _ = self.update_fixed(-1);
        }
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
