//! The backend interface: a fixed number of slots (the queue depth), each owning
//! one buffer of `buffer_len()` bytes while its operation is in flight.
//!
//! Writes: `write(slot, fd, offset, data)` copies `data` (a sealed segment, already
//! ciphertext) into the slot's buffer — for io_uring that buffer is untrusted,
//! registered memory — and starts the write. Reads: `read(slot, ...)` starts a read
//! into the slot's buffer; once its completion arrives, `copy_out(slot, ...)` moves
//! the bytes into trusted memory exactly once. A completion always covers the whole
//! request (backends resubmit short transfers themselves) or carries an error; a
//! read may end short only at end of file. Buffer memory is never handed out as a
//! Rust reference, so untrusted bytes are only ever copied, never borrowed.
//!
//! Everything here is core + alloc: the errors are [`crate::error::Error`]
//! (`std::io::Error` with the `std` feature), so a backend can be written for an
//! enclave without std (Occlum's LibOS) against the same trait.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::CStr;

use crate::error::Result;
use crate::faults::FaultPlan;

/// A file descriptor, as the backends pass it to the kernel: `std::os::fd::RawFd`
/// (the same type: C `int`), spelled so it needs no std.
pub type RawFd = core::ffi::c_int;

/// Which backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// io_uring with SQPOLL and registered untrusted buffers: no exits in steady state.
    Uring,
    /// One modeled enclave exit per pread/pwrite/fsync (Occlum hostfs today).
    Ocall,
    /// Host worker threads take requests from a shared queue (SGX SDK switchless calls).
    Switchless,
    /// Plain synchronous pread/pwrite, no model.
    Sync,
    /// Discards writes (benchmarks: sealing throughput without any IO).
    Null,
}

impl BackendKind {
    /// The name used by the Python API and the benchmarks.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Ocall => "ocall",
            Self::Switchless => "switchless",
            Self::Sync => "sync",
            Self::Null => "null",
        }
    }
}

pub use crate::op::OpKind;

/// The outcome of one submitted operation.
#[derive(Debug)]
pub struct Completion {
    /// The slot the operation used; it is free again.
    pub slot: usize,
    /// Bytes transferred (the full request, or less for a read that hit end of file), or the error.
    pub result: Result<usize>,
}

/// What a backend did, for the benchmarks and the exit-count tests.
///
/// The one definition of these counters (exitless-io's `Counters`): `#[repr(C)]`
/// and all `u64`, it is the C ABI's `ExitlessCounters` too (cbindgen emits it into
/// exitless.h; `ExitlessStats::io` holds it), and Python's `stats()` keys are its
/// field names, read from that declaration. A new counter is added to the Rust
/// struct only (and to `zip_with`, which the compiler enforces).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Enclave exits (modeled OCALLs, or real syscalls that would be exits: `io_uring_enter`).
    pub exits: u64,
    /// System calls made on the data path.
    pub syscalls: u64,
    /// `io_uring_enter` calls (a subset of `syscalls`).
    pub uring_enters: u64,
    /// SQPOLL thread wake-ups requested (each is one `io_uring_enter`).
    pub sqpoll_wakeups: u64,
    /// Payload bytes read and written.
    pub bytes: u64,
    /// Operations completed (segments, plus fsyncs).
    pub ops: u64,
    /// Completions rejected by the validator (forged or corrupt).
    pub completions_rejected: u64,
    /// Short transfers that were resubmitted for the remainder.
    pub resubmits: u64,
    /// Switchless requests that fell back to a modeled exit.
    pub fallbacks: u64,
    /// File-lifecycle operations ([`FileOp`]: open, close, unlink, stat, truncate,
    /// allocate), wherever they ran: on the ring (no exit) or as system calls (one
    /// exit each in an enclave, charged by the OCALL model).
    pub file_ops: u64,
}

impl Counters {
    /// `f` of `self`'s and `other`'s values, field by field: the one place besides
    /// the definition that names every field.
    fn zip_with(&self, other: &Counters, f: impl Fn(u64, u64) -> u64) -> Counters {
        Counters {
            exits: f(self.exits, other.exits),
            syscalls: f(self.syscalls, other.syscalls),
            uring_enters: f(self.uring_enters, other.uring_enters),
            sqpoll_wakeups: f(self.sqpoll_wakeups, other.sqpoll_wakeups),
            bytes: f(self.bytes, other.bytes),
            ops: f(self.ops, other.ops),
            completions_rejected: f(self.completions_rejected, other.completions_rejected),
            resubmits: f(self.resubmits, other.resubmits),
            fallbacks: f(self.fallbacks, other.fallbacks),
            file_ops: f(self.file_ops, other.file_ops),
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        *self = self.zip_with(other, |a, b| a + b);
    }

    /// `self - earlier`, field by field (a backend is reused across streams).
    pub fn since(&self, earlier: &Counters) -> Counters {
        self.zip_with(earlier, |a, b| a - b)
    }
}

/// Something a stream does to a file besides reading and writing it. Inside an
/// enclave each is an exit when made as a system call; the io_uring backend makes
/// them on its ring instead (`IORING_OP_OPENAT`, `CLOSE`, `UNLINKAT`, `STATX`,
/// `FTRUNCATE`, `FALLOCATE`).
#[derive(Clone, Copy, Debug)]
pub enum FileOp<'a> {
    /// `openat(AT_FDCWD, path, flags, mode)`; yields [`FileOpOutput::Fd`].
    Open {
        /// Path, relative to the working directory or absolute.
        path: &'a CStr,
        /// `O_*` flags.
        flags: i32,
        /// Mode bits for a created file.
        mode: u32,
    },
    /// `close(fd)`. The descriptor is gone afterwards whatever the result.
    Close(RawFd),
    /// `unlinkat(AT_FDCWD, path, 0)`: removes a file (never a directory).
    Unlink(&'a CStr),
    /// The type and length of an open file; yields [`FileOpOutput::Stat`].
    Stat(RawFd),
    /// `ftruncate(fd, len)`.
    Truncate(RawFd, u64),
    /// `fallocate(fd, 0, offset, len)`: reserves space.
    Allocate(RawFd, u64, u64),
}

impl FileOp<'_> {
    /// The system call's name, for error messages.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Close(_) => "close",
            Self::Unlink(_) => "unlink",
            Self::Stat(_) => "stat",
            Self::Truncate(..) => "truncate",
            Self::Allocate(..) => "allocate",
        }
    }
}

/// What a finished [`FileOp`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOpOutput {
    /// The new descriptor ([`FileOp::Open`]).
    Fd(RawFd),
    /// The file's type and length ([`FileOp::Stat`]).
    Stat(FileStat),
    /// Done (every other op).
    Done,
}

/// The type of a file, as far as a stream cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A device, FIFO, socket or symlink.
    Other,
}

impl FileType {
    /// The type a `st_mode` / `stx_mode` value names.
    pub const fn from_mode(mode: u32) -> Self {
        match mode & 0o170000 {
            0o100000 => Self::Regular,
            0o040000 => Self::Directory,
            _ => Self::Other,
        }
    }
}

/// The type and length of an open file ([`FileOp::Stat`]). Both come from the
/// untrusted kernel: a reader authenticates what the length implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Regular file, directory, or something else.
    pub kind: FileType,
    /// Length in bytes.
    pub len: u64,
}

fn unexpected(what: &str, got: FileOpOutput) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorKind::InvalidData,
        alloc::format!("{what}: the backend answered {got:?}"),
    )
}

/// An IO backend with `depth()` slots of `buffer_len()` bytes each.
pub trait Backend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Number of slots: operations that can be in flight at once.
    fn depth(&self) -> usize;
    /// Length of each slot's buffer.
    fn buffer_len(&self) -> usize;
    /// Copies `data` into idle slot `slot`'s buffer at byte `at` and starts nothing:
    /// one write can be assembled from several pieces (consecutive sealed segments),
    /// then started by [`write_staged`](Self::write_staged).
    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> Result<()>;
    /// Starts writing the first `len` bytes staged in `slot` at `offset` of `fd`.
    /// With `pad_to` > `len`, zeros fill the write up to `pad_to` bytes (for
    /// block-aligned direct IO; the caller truncates the file afterwards).
    fn write_staged(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize, pad_to: usize) -> Result<()>;
    /// Copies `data` into free slot `slot` and starts writing it at `offset` of `fd`,
    /// padded with zeros to `pad_to` bytes ([`stage`](Self::stage), then
    /// [`write_staged`](Self::write_staged)).
    fn write(&mut self, slot: usize, fd: RawFd, offset: u64, data: &[u8], pad_to: usize) -> Result<()> {
        self.stage(slot, 0, data)?;
        self.write_staged(slot, fd, offset, data.len(), pad_to)
    }
    /// Starts reading `len` bytes at `offset` of `fd` into free slot `slot`.
    fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> Result<()>;
    /// As [`read`](Self::read), but the first transfer completes the operation,
    /// short or not: one IO, where a whole read of a file shorter than `len` takes
    /// two (the second finds the end). For reading a small file whole without
    /// asking its length first; a short count is only what the kernel says (a
    /// reader authenticates what it implies).
    fn read_some(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> Result<()> {
        self.read(slot, fd, offset, len)
    }
    /// Copies `out.len()` bytes from byte `at` of a completed read's slot into
    /// trusted `out` (one read can hold several segments). The slot stays reserved
    /// until the caller submits with it again.
    fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]);
    /// Copies the first `out.len()` bytes of a completed read out of `slot`.
    fn copy_out(&mut self, slot: usize, out: &mut [u8]) {
        self.copy_out_at(slot, 0, out);
    }
    /// Waits until at least one operation has completed (if any is in flight) and
    /// appends every completion available to `out`. An error here (not inside a
    /// completion) means the backend itself can no longer be trusted.
    fn wait(&mut self, out: &mut Vec<Completion>) -> Result<()>;
    /// Appends the completions available now, without waiting. Backends that
    /// complete at submit (sync, ocall, switchless, null) queue them, so the
    /// default, `wait`, does not block for them; io_uring overrides it.
    fn try_wait(&mut self, out: &mut Vec<Completion>) -> Result<()> {
        self.wait(out)
    }
    /// Operations in flight.
    fn in_flight(&self) -> usize;
    /// Whether operations in flight belong to the thread that submitted them, so
    /// that it must not end before they complete (the kernel cancels them): io_uring
    /// without an SQPOLL thread. Streams then let nothing stay in flight past a call.
    fn thread_bound(&self) -> bool {
        false
    }
    /// Flushes `fd` to stable storage (call after waiting for its writes).
    fn fsync(&mut self, fd: RawFd) -> Result<()>;
    /// What the backend did so far.
    fn counters(&self) -> Counters;
    /// Runs one file-lifecycle operation to its end (call with nothing of the file
    /// in flight). Every backend counts it in [`Counters::file_ops`]; the exit it
    /// costs in an enclave is counted (and modeled) as for reads and writes.
    fn file_op(&mut self, op: FileOp<'_>) -> Result<FileOpOutput>;
    /// [`FileOp::Open`]: the new descriptor.
    fn open(&mut self, path: &CStr, flags: i32, mode: u32) -> Result<RawFd> {
        match self.file_op(FileOp::Open { path, flags, mode })? {
            FileOpOutput::Fd(fd) => Ok(fd),
            other => Err(unexpected("open", other)),
        }
    }
    /// [`FileOp::Stat`]: the open file's type and length.
    fn stat(&mut self, fd: RawFd) -> Result<FileStat> {
        match self.file_op(FileOp::Stat(fd))? {
            FileOpOutput::Stat(st) => Ok(st),
            other => Err(unexpected("stat", other)),
        }
    }
    /// Injects `plan`'s faults into the operations started from now on (`None`:
    /// stop injecting); see [`crate::faults`]. Returns `false` if this backend does
    /// not support fault injection (then nothing changes).
    fn set_faults(&mut self, plan: Option<Arc<FaultPlan>>) -> bool {
        let _ = plan;
        false
    }
}
