//! [`SwitchlessBackend`]: modeled on the SGX SDK's switchless OCALLs.
//!
//! Host worker threads poll a shared array of request slots, one per backend slot
//! plus one for fsync. Each request moves Free → Posted (the caller filled it in)
//! → Taken (a worker claimed it) → Done (the result is in) → Free. The caller posts
//! and spins; if no worker has taken the request after `retries_before_fallback`
//! spins, it cancels it (CAS Posted → Free) and performs it itself as an ordinary,
//! modeled OCALL — one exit, and one fallback — and wakes sleeping workers, as the
//! SDK does. Once a worker has taken it, the caller spins until it is Done. Calls
//! are synchronous from the caller's side, as the SDK's are, so completions are
//! queued at submit.
//!
//! Data travels through an untrusted bounce buffer per slot, which the request
//! points to. A fallback OCALL therefore passes a pointer to memory that is already
//! untrusted and needs no marshalling: it costs one exit at any size (the model's
//! triple rule does not apply). What a worker reports is checked before use, as
//! ring completions are: at most the bytes requested, or an errno from the
//! allow-list; anything else fails the submit and counts as a rejected completion.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::{Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput, OpKind};
use crate::error::{RejectedCompletion, Reporter};
use crate::faults::{self, Fault, FaultPlan};
use crate::model::OcallModel;
use crate::sync::{count, fsync_retrying, transfer_all, SlotQueue};
use crate::untrusted::{KernelAddr, UntrustedRegion, PAGE};
use crate::validate::{Rejected, ALLOWED_ERRNOS};

/// How the switchless machinery behaves (the defaults are the SGX SDK's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchlessConfig {
    /// Host worker threads polling the request slots (0: every call falls back).
    pub workers: usize,
    /// Spins the caller waits for a worker to take a request before falling back.
    pub retries_before_fallback: u32,
    /// Empty polling rounds after which a worker goes to sleep.
    pub worker_idle_spins: u32,
    /// How long a sleeping worker first sleeps unless a fallback wakes it; each
    /// further timeout without work doubles it, up to [`MAX_SLEEP_DOUBLINGS`]
    /// doublings. `None`: never sleep.
    pub worker_sleep: Option<Duration>,
}

impl Default for SwitchlessConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            retries_before_fallback: 20_000,
            worker_idle_spins: 20_000,
            worker_sleep: Some(Duration::from_millis(1)),
        }
    }
}

/// How often an idle worker's sleep doubles (1 ms grows to 64 ms): a thousand idle
/// backends then cost ~16,000 wake-ups a second instead of a million, which on two
/// cores left no CPU for the streams (docs/HARDENING.md, "Stress"). A caller that
/// finds its worker asleep falls back and wakes it, as before.
pub const MAX_SLEEP_DOUBLINGS: u32 = 6;

const FREE: u32 = 0;
const POSTED: u32 = 1;
const TAKEN: u32 = 2;
const DONE: u32 = 3;

const OP_READ: u8 = 0;
const OP_WRITE: u8 = 1;
const OP_FSYNC: u8 = 2;

/// `result` value for a pwrite that wrote nothing (not an errno).
const WRITE_ZERO: i64 = i64::MIN;

/// One request slot in the shared (untrusted) array.
#[repr(align(64))]
struct Request {
    state: AtomicU32,
    op: AtomicU8,
    fd: AtomicI32,
    offset: AtomicU64,
    len: AtomicUsize,
    /// This slot's bounce buffer (null for the fsync request); fixed at setup.
    buffer: AtomicPtr<u8>,
    /// Bytes moved, or −errno, or [`WRITE_ZERO`].
    result: AtomicI64,
    /// Syscalls the worker made.
    calls: AtomicU64,
    /// An injected fault for the first attempt (see [`encode_fault`]); 0: none.
    fault: AtomicI32,
}

/// A fault as it travels in a request: 0 none, -1 short, a positive errno.
fn encode_fault(fault: Option<Fault>) -> i32 {
    match fault {
        None => 0,
        Some(Fault::Short) => -1,
        Some(Fault::Errno(e)) => e,
    }
}

fn decode_fault(raw: i32) -> Option<Fault> {
    match raw {
        0 => None,
        -1 => Some(Fault::Short),
        e => Some(Fault::Errno(e)),
    }
}

struct Shared {
    requests: Box<[Request]>,
    stop: AtomicBool,
}

fn encode(result: io::Result<usize>) -> i64 {
    match result {
        Ok(n) => n as i64,
        Err(e) => e.raw_os_error().map_or(WRITE_ZERO, |errno| -i64::from(errno)),
    }
}

fn decode(result: i64) -> io::Result<usize> {
    match result {
        WRITE_ZERO => Err(io::Error::new(io::ErrorKind::WriteZero, "pwrite wrote nothing")),
        n if n < 0 => Err(io::Error::from_raw_os_error((-n) as i32)),
        n => Ok(n as usize),
    }
}

/// A request as one side read it from the shared slot: every field loaded exactly
/// once, so what is checked is what is performed (no double fetch, should the slot
/// ever live in host memory).
#[derive(Clone, Copy)]
struct RequestCopy {
    op: u8,
    fd: RawFd,
    offset: u64,
    buffer: KernelAddr,
    fault: Option<Fault>,
}

impl RequestCopy {
    /// Reads request `r` once (a worker that has taken it).
    fn load(r: &Request) -> Self {
        let len = r.len.load(Relaxed);
        let buffer = r.buffer.load(Relaxed);
        Self {
            op: r.op.load(Relaxed),
            fd: r.fd.load(Relaxed),
            offset: r.offset.load(Relaxed),
            // The worker runs on the host's side: it takes the address it was given.
            buffer: KernelAddr::from_raw(buffer, if buffer.is_null() { 0 } else { len }),
            fault: decode_fault(r.fault.load(Relaxed)),
        }
    }

    /// Publishes this request in `r` (the caller, before it posts it).
    fn store(&self, r: &Request) {
        r.fault.store(encode_fault(self.fault), Relaxed);
        r.op.store(self.op, Relaxed);
        r.fd.store(self.fd, Relaxed);
        r.offset.store(self.offset, Relaxed);
        r.len.store(self.buffer.len(), Relaxed);
    }
}

/// Performs `req`; returns the encoded result and the syscalls made.
///
/// # Safety
/// `req.buffer` is a bounce buffer range of the backend that posted it, which keeps
/// the mapping alive until every worker has been joined, and neither the caller
/// nor another worker touches that slot's buffer until the request is Done (or,
/// on fallback, until this returns).
unsafe fn perform(req: &RequestCopy) -> (i64, u64) {
    let op = match req.op {
        OP_FSYNC => {
            let (result, calls) = fsync_retrying(req.fd, req.fault);
            return (encode(result.map(|()| 0)), calls);
        }
        OP_WRITE => OpKind::Write,
        _ => OpKind::Read,
    };
    // SAFETY: forwarded contract: the range is mapped and used by this call alone.
    let (result, calls) = unsafe { transfer_all(req.fd, op, req.buffer, req.offset, req.fault, false) };
    (encode(result), calls)
}

fn worker(shared: &Shared, idle_spins: u32, sleep: Option<Duration>) {
    let mut idle = 0u32;
    let mut doublings = 0u32;
    while !shared.stop.load(Acquire) {
        let mut served = false;
        for r in shared.requests.iter() {
            if r.state.load(Relaxed) == POSTED
                && r.state.compare_exchange(POSTED, TAKEN, Acquire, Relaxed).is_ok()
            {
                let req = RequestCopy::load(r);
                // SAFETY: the request was posted by the backend that owns this worker,
                // whose bounce buffers outlive it (see `SwitchlessBackend`'s Drop); it
                // is Taken by this thread, so nobody else touches its buffer until Done.
                let (result, calls) = unsafe { perform(&req) };
                r.result.store(result, Relaxed);
                r.calls.store(calls, Relaxed);
                r.state.store(DONE, Release);
                served = true;
            }
        }
        if served {
            idle = 0;
            doublings = 0;
            continue;
        }
        match sleep {
            Some(d) if idle >= idle_spins => {
                let nap = d * (1 << doublings);
                let parked = std::time::Instant::now();
                std::thread::park_timeout(nap);
                // Woken early: a caller fell back and unparked us, so requests are
                // coming: spin again. Timed out: stay asleep (one look per nap, the
                // nap doubling up to 64 `d`), so an idle worker costs no CPU, instead
                // of 20,000 spins every `d`.
                if parked.elapsed() < nap {
                    idle = 0;
                    doublings = 0;
                } else {
                    doublings = (doublings + 1).min(MAX_SLEEP_DOUBLINGS);
                }
            }
            _ => {
                idle = idle.saturating_add(1);
                std::hint::spin_loop();
            }
        }
    }
}

/// Switchless calls: host workers do the syscalls; exits only on fallback.
pub struct SwitchlessBackend {
    config: SwitchlessConfig,
    model: OcallModel,
    slots: SlotQueue,
    shared: Arc<Shared>,
    /// Per-slot bounce buffers, `stride` bytes apart; outlives the workers (see Drop).
    bounce: UntrustedRegion,
    stride: usize,
    workers: Vec<JoinHandle<()>>,
    counters: Counters,
    faults: Option<Arc<FaultPlan>>,
}

impl SwitchlessBackend {
    /// A backend of `depth` slots of `buffer_len` bytes; fallbacks are charged by `model`.
    pub fn new(
        depth: usize,
        buffer_len: usize,
        config: SwitchlessConfig,
        model: OcallModel,
    ) -> io::Result<Self> {
        let slots = SlotQueue::new(depth, buffer_len)?;
        let stride = buffer_len.div_ceil(PAGE) * PAGE;
        let bounce = UntrustedRegion::new(stride * depth)?;
        let requests = (0..=depth)
            .map(|i| Request {
                state: AtomicU32::new(FREE),
                op: AtomicU8::new(OP_READ),
                fd: AtomicI32::new(-1),
                offset: AtomicU64::new(0),
                len: AtomicUsize::new(0),
                // Slot `i`'s buffer; the extra last request (fsync) has none.
                buffer: AtomicPtr::new(if i < depth {
                    bounce.kernel_addr(i * stride, stride).addr()
                } else {
                    std::ptr::null_mut()
                }),
                result: AtomicI64::new(0),
                calls: AtomicU64::new(0),
                fault: AtomicI32::new(0),
            })
            .collect();
        let shared = Arc::new(Shared { requests, stop: AtomicBool::new(false) });
        let mut backend = Self {
            config,
            model,
            slots,
            shared,
            bounce,
            stride,
            workers: Vec::with_capacity(config.workers),
            counters: Counters::default(),
            faults: None,
        };
        for i in 0..config.workers {
            let shared = Arc::clone(&backend.shared);
            let handle = std::thread::Builder::new()
                .name(format!("exitless-switchless-{i}"))
                .spawn(move || worker(&shared, config.worker_idle_spins, config.worker_sleep))?;
            backend.workers.push(handle);
        }
        Ok(backend)
    }

    /// The configuration in use.
    pub fn config(&self) -> SwitchlessConfig {
        self.config
    }

    /// Posts request `index`, waits for a worker or falls back; returns the operation's
    /// result, checked like a ring completion (outer error: the worker reported
    /// something no syscall returns).
    fn call(
        &mut self,
        index: usize,
        op: u8,
        fd: RawFd,
        offset: u64,
        len: usize,
    ) -> io::Result<io::Result<usize>> {
        let fault = match op {
            OP_FSYNC => self.faults.as_ref().and_then(|p| p.next_fsync()),
            OP_WRITE => faults::next(&self.faults, OpKind::Write),
            _ => faults::next(&self.faults, OpKind::Read),
        };
        // The request this caller checked, kept in trusted memory: a fallback runs
        // this copy, never what the shared slot holds by then.
        let buffer = if op == OP_FSYNC {
            KernelAddr::from_raw(std::ptr::null_mut(), 0)
        } else {
            self.bounce.kernel_addr(index * self.stride, len)
        };
        let req = RequestCopy { op, fd, offset, buffer, fault };
        let r = &self.shared.requests[index];
        req.store(r);
        r.state.store(POSTED, Release);
        let mut spins = 0u32;
        let (result, calls) = loop {
            match r.state.load(Acquire) {
                DONE => {
                    let out = (r.result.load(Relaxed), r.calls.load(Relaxed));
                    r.state.store(FREE, Relaxed);
                    break out;
                }
                POSTED if spins >= self.config.retries_before_fallback => {
                    if r.state.compare_exchange(POSTED, FREE, Relaxed, Relaxed).is_ok() {
                        // Nobody took it: an ordinary OCALL, which also wakes the workers.
                        // SAFETY: `req.buffer` is this backend's bounce slot `index`,
                        // mapped while `self` lives; the request was cancelled, so no
                        // worker touches it.
                        let out = unsafe { perform(&req) };
                        self.model.charge(1);
                        self.counters.exits += 1;
                        self.counters.fallbacks += 1;
                        for w in &self.workers {
                            w.thread().unpark();
                        }
                        break out;
                    }
                }
                _ => {
                    spins = spins.saturating_add(1);
                    if spins % (1 << 16) == 0 {
                        // Now and then, give the CPU to a worker that may be waiting for it.
                        std::thread::yield_now();
                    }
                    std::hint::spin_loop();
                }
            }
        };
        let slot = index as u32;
        let result = match decode(result) {
            Ok(n) if n > len => Err(Rejected::TooLong {
                slot,
                requested: len as u64,
                reported: n.try_into().unwrap_or(i64::MAX),
            }),
            Err(e) => match e.raw_os_error() {
                Some(errno) if !ALLOWED_ERRNOS.contains(&errno) => {
                    Err(Rejected::UnknownErrno { slot, errno })
                }
                _ => Ok(Err(e)),
            },
            result => Ok(result),
        };
        let result = result.map_err(|why| {
            self.counters.completions_rejected += 1;
            io::Error::from(RejectedCompletion::new(Reporter::SwitchlessWorker, why))
        })?;
        if op == OP_FSYNC {
            self.counters.syscalls += calls;
            self.counters.resubmits += calls.saturating_sub(1);
            self.counters.ops += 1;
        } else {
            count(&mut self.counters, &result, calls);
        }
        Ok(result)
    }
}

impl Drop for SwitchlessBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            // A worker that panicked has nothing left to clean up.
            let _ = w.join();
        }
    }
}

impl Backend for SwitchlessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Switchless
    }

    crate::sync::slot_queue_methods!();

    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
        self.slots.check_stage(slot, at, data.len())?;
        self.bounce.copy_in(slot * self.stride + at, data);
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
        let total = self.slots.check_write(slot, len, pad_to)?;
        self.bounce.zero(slot * self.stride + len, total - len);
        let result = self.call(slot, OP_WRITE, fd, offset, total)?;
        self.slots.complete(slot, result);
        Ok(())
    }

    fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.slots.check_read(slot, len)?;
        let result = self.call(slot, OP_READ, fd, offset, len)?;
        self.slots.complete(slot, result);
        Ok(())
    }

    fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]) {
        self.slots.check_copy_out(slot, at, out.len());
        self.bounce.copy_out(slot * self.stride + at, out);
    }

    fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
        let index = self.slots.depth();
        self.call(index, OP_FSYNC, fd, 0, 0)?.map(|_| ())
    }

    /// A modeled exit each (counted as a fallback): the host workers serve reads,
    /// writes and fsync only.
    fn file_op(&mut self, op: FileOp<'_>) -> io::Result<FileOpOutput> {
        let result = crate::files::counted(op, &mut self.counters, 1);
        self.counters.fallbacks += 1;
        self.model.charge(1);
        result
    }

    fn set_faults(&mut self, plan: Option<Arc<FaultPlan>>) -> bool {
        self.faults = plan;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const FREE_MODEL: OcallModel = OcallModel { cycles_per_exit: 10, triple_above: Some(16384) };

    #[test]
    fn results_round_trip_through_the_shared_encoding() {
        assert_eq!(decode(encode(Ok(4096))).unwrap(), 4096);
        let e = decode(encode(Err(io::Error::from_raw_os_error(libc::ENOSPC)))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let e = decode(encode(Err(io::Error::new(io::ErrorKind::WriteZero, "x")))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn fsync_goes_through_its_own_request() {
        let f = tempfile::tempfile().unwrap();
        let config = SwitchlessConfig { workers: 0, ..SwitchlessConfig::default() };
        let mut b = SwitchlessBackend::new(2, 4096, config, FREE_MODEL).unwrap();
        b.fsync(f.as_raw_fd()).unwrap();
        let c = b.counters();
        assert_eq!((c.exits, c.fallbacks, c.syscalls, c.ops), (1, 1, 1, 1));
        assert_eq!(b.fsync(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn forged_worker_results_are_rejected() {
        let f = tempfile::tempfile().unwrap();
        let config = SwitchlessConfig { workers: 0, retries_before_fallback: u32::MAX, ..Default::default() };
        let mut b = SwitchlessBackend::new(1, 4096, config, FREE_MODEL).unwrap();
        let shared = Arc::clone(&b.shared);
        // A hostile host worker: claims more bytes than asked, then an unknown errno.
        let host = std::thread::spawn(move || {
            for forged in [4097, -9999] {
                let r = &shared.requests[0];
                while r.state.compare_exchange(POSTED, TAKEN, Acquire, Relaxed).is_err() {
                    std::hint::spin_loop();
                }
                r.result.store(forged, Relaxed);
                r.state.store(DONE, Release);
            }
        });
        let fd = f.as_raw_fd();
        for err in [b.write(0, fd, 0, b"abc", 0).unwrap_err(), b.read(0, fd, 0, 4096).unwrap_err()] {
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let rejected = crate::error::rejected_completion(&err).expect("a rejected completion");
            assert_eq!(rejected.reporter(), Reporter::SwitchlessWorker, "{err}");
        }
        host.join().unwrap();
        assert_eq!(b.counters().completions_rejected, 2);
        assert_eq!(b.in_flight(), 0);
    }

    /// CPU time (user + system) of this backend's worker threads, in microseconds.
    /// Only theirs: the process's total also counts the tests running beside this one
    /// (the OCALL model's spins, other backends), which made the check flaky.
    fn workers_cpu_us(b: &SwitchlessBackend) -> u64 {
        use std::os::unix::thread::JoinHandleExt;
        b.workers
            .iter()
            .map(|h| {
                let mut clock: libc::clockid_t = 0;
                // SAFETY: the worker runs until the backend is dropped, so its pthread_t
                // is valid; `clock` is writable.
                assert_eq!(unsafe { libc::pthread_getcpuclockid(h.as_pthread_t(), &mut clock) }, 0);
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: `t` is writable; `clock` names a live thread's CPU clock.
                assert_eq!(unsafe { libc::clock_gettime(clock, &mut t) }, 0);
                t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
            })
            .sum()
    }

    #[test]
    #[cfg_attr(miri, ignore = "pthread_getcpuclockid is a foreign function Miri cannot run")]
    fn idle_workers_sleep_instead_of_spinning_every_millisecond() {
        let mut b = SwitchlessBackend::new(1, 4096, SwitchlessConfig::default(), FREE_MODEL).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // past the idle spins: asleep
        let before = workers_cpu_us(&b);
        std::thread::sleep(Duration::from_millis(500));
        let used = workers_cpu_us(&b) - before;
        // A worker that spun 20,000 rounds after every 1 ms timeout used ~260 ms of the 500 here.
        assert!(used < 50_000, "an idle switchless worker used {used} µs of CPU in 500 ms");
        // And it still serves: a request after the idle period completes.
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("f")).unwrap();
        b.write(0, f.as_raw_fd(), 0, b"abc", 0).unwrap();
        drop(b);
    }

    #[test]
    fn drop_joins_sleeping_and_spinning_workers() {
        let sleeping = SwitchlessConfig { workers: 2, worker_idle_spins: 1, ..SwitchlessConfig::default() };
        drop(SwitchlessBackend::new(1, 4096, sleeping, FREE_MODEL).unwrap());
        let spinning = SwitchlessConfig { workers: 2, worker_sleep: None, ..SwitchlessConfig::default() };
        drop(SwitchlessBackend::new(1, 4096, spinning, FREE_MODEL).unwrap());
    }
}
