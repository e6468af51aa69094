//! [`SyncBackend`]: plain synchronous pread/pwrite from trusted buffers, no exit
//! model. The fallback where nothing better works, and the baseline.
//!
//! Also the slot bookkeeping the synchronous backends share (`SlotQueue`): they
//! perform each operation at submit and queue its completion for the next `wait`.

use std::io;
use std::os::fd::RawFd;

use std::sync::Arc;

use crate::backend::{Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput, OpKind};
use crate::faults::{self, Fault, FaultPlan};
use crate::untrusted::{KernelAddr, PAGE};

/// Slot states and ready completions of a backend that completes every operation
/// at submit: a slot is busy from its submit until `wait` hands its completion back.
pub(crate) struct SlotQueue {
    busy: Vec<bool>,
    ready: Vec<Completion>,
    buffer_len: usize,
}

impl SlotQueue {
    /// `depth` idle slots of `buffer_len` bytes; both must be non-zero.
    pub(crate) fn new(depth: usize, buffer_len: usize) -> io::Result<Self> {
        if depth == 0 || buffer_len == 0 {
            return Err(invalid(format!(
                "depth ({depth}) and buffer length ({buffer_len}) must be non-zero"
            )));
        }
        Ok(Self { busy: vec![false; depth], ready: Vec::with_capacity(depth), buffer_len })
    }

    /// Number of slots.
    pub(crate) fn depth(&self) -> usize {
        self.busy.len()
    }

    /// Length of each slot's buffer.
    pub(crate) fn buffer_len(&self) -> usize {
        self.buffer_len
    }

    fn check_free(&self, slot: usize) -> io::Result<()> {
        match self.busy.get(slot) {
            None => Err(invalid(format!("slot {slot} out of range (depth {})", self.depth()))),
            Some(true) => Err(invalid(format!("slot {slot} is in flight"))),
            Some(false) => Ok(()),
        }
    }

    /// Checks a write of `data_len` bytes padded to `pad_to`; returns the bytes to write.
    pub(crate) fn check_write(&self, slot: usize, data_len: usize, pad_to: usize) -> io::Result<usize> {
        self.check_free(slot)?;
        let len = data_len.max(pad_to);
        if len > self.buffer_len {
            return Err(invalid(format!("write of {len} bytes exceeds the {}-byte slot", self.buffer_len)));
        }
        Ok(len)
    }

    /// Checks a read of `len` bytes into `slot`.
    pub(crate) fn check_read(&self, slot: usize, len: usize) -> io::Result<()> {
        self.check_free(slot)?;
        if len > self.buffer_len {
            return Err(invalid(format!("read of {len} bytes exceeds the {}-byte slot", self.buffer_len)));
        }
        Ok(())
    }

    /// Panics unless `slot` exists, has no completion pending and holds bytes
    /// `at .. at + len` (caller bugs).
    pub(crate) fn check_copy_out(&self, slot: usize, at: usize, len: usize) {
        assert!(slot < self.depth(), "copy_out: slot {slot} out of range");
        assert!(!self.busy[slot], "copy_out: slot {slot} has not been waited for");
        assert!(
            at.checked_add(len).is_some_and(|end| end <= self.buffer_len),
            "copy_out: bytes {at}+{len} exceed the {}-byte slot",
            self.buffer_len
        );
    }

    /// Checks staging `len` bytes at byte `at` of idle `slot`.
    pub(crate) fn check_stage(&self, slot: usize, at: usize, len: usize) -> io::Result<()> {
        self.check_free(slot)?;
        if at.checked_add(len).is_none_or(|end| end > self.buffer_len) {
            return Err(invalid(format!(
                "staging {len} bytes at {at} exceeds the {}-byte slot",
                self.buffer_len
            )));
        }
        Ok(())
    }

    /// Records the finished operation on `slot`; `wait` will return it.
    pub(crate) fn complete(&mut self, slot: usize, result: io::Result<usize>) {
        self.busy[slot] = true;
        self.ready.push(Completion { slot, result });
    }

    /// Hands every queued completion to `out`, freeing their slots.
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>) {
        for c in self.ready.drain(..) {
            self.busy[c.slot] = false;
            out.push(c);
        }
    }

    /// Operations submitted and not yet waited for.
    pub(crate) fn in_flight(&self) -> usize {
        self.ready.len()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `fsync(fd)`, retrying EINTR; returns the outcome and the syscalls made. An
/// injected `fault` replaces the first attempt (an errno fault fails it unmade).
pub(crate) fn fsync_retrying(fd: RawFd, mut fault: Option<Fault>) -> (io::Result<()>, u64) {
    let mut calls = 0;
    loop {
        calls += 1;
        let e = match fault.take() {
            Some(Fault::Errno(errno)) => io::Error::from_raw_os_error(errno),
            // SAFETY: fsync takes no pointers; a bad descriptor yields EBADF.
            _ if unsafe { libc::fsync(fd) } == 0 => return (Ok(()), calls),
            _ => io::Error::last_os_error(),
        };
        if e.kind() != io::ErrorKind::Interrupted {
            return (Err(e), calls);
        }
    }
}

/// The [`Backend`] methods every backend over a [`SlotQueue`] (fields `slots` and
/// `counters`) answers alike: each op completes inside its call, so `wait` only
/// hands over what is done.
macro_rules! slot_queue_methods {
    () => {
        fn depth(&self) -> usize {
            self.slots.depth()
        }

        fn buffer_len(&self) -> usize {
            self.slots.buffer_len()
        }

        fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
            self.slots.drain(out);
            Ok(())
        }

        fn in_flight(&self) -> usize {
            self.slots.in_flight()
        }

        fn counters(&self) -> Counters {
            self.counters
        }
    };
}
pub(crate) use slot_queue_methods;

/// fsync on `fd` with plain syscalls (the plan's next fsync fault applies), counted
/// as one op in `counters`; returns the result and the syscalls made.
pub(crate) fn fsync_counted(
    fd: RawFd,
    faults: &Option<Arc<FaultPlan>>,
    counters: &mut Counters,
) -> (io::Result<()>, u64) {
    let fault = faults.as_ref().and_then(|p| p.next_fsync());
    let (result, calls) = fsync_retrying(fd, fault);
    counters.syscalls += calls;
    counters.resubmits += calls - 1;
    counters.ops += 1;
    (result, calls)
}

/// Writes or reads all of `buf` at `offset` with plain syscalls, retrying EINTR and
/// short transfers (with `some`, a read stops after its first transfer); returns the
/// bytes moved (short only for a read at end of file, or with `some`) and the
/// syscalls made. An injected `fault` applies to the first attempt: an
/// errno fails it without the syscall, `Short` makes it move only part of `buf`.
///
/// # Safety
/// `buf` names memory that stays valid for reads (a write) or writes (a read) of
/// all its bytes until this returns, and that no Rust reference covers meanwhile:
/// trusted memory lent with [`KernelAddr::lend`], or an untrusted region the caller
/// holds exclusively.
pub(crate) unsafe fn transfer_all(
    fd: RawFd,
    op: OpKind,
    buf: KernelAddr,
    offset: u64,
    mut fault: Option<Fault>,
    some: bool,
) -> (io::Result<usize>, u64) {
    let mut done = 0usize;
    let mut calls = 0u64;
    while done < buf.len() {
        calls += 1;
        let at = (offset + done as u64) as libc::off_t;
        let rest = buf.skip(done);
        let rest = match fault.take() {
            Some(Fault::Short) => rest.prefix(Fault::short_len(rest.len())),
            Some(Fault::Errno(errno)) => {
                let e = io::Error::from_raw_os_error(errno);
                if e.kind() != io::ErrorKind::Interrupted {
                    return (Err(e), calls);
                }
                continue;
            }
            None => rest,
        };
        // SAFETY: `rest` lies within `buf`, valid for this access for the whole call
        // and covered by no Rust reference (this function's contract); the kernel
        // checks the address itself.
        let n = unsafe {
            match op {
                OpKind::Write => libc::pwrite(fd, rest.addr().cast_const().cast(), rest.len(), at),
                OpKind::Read => libc::pread(fd, rest.addr().cast(), rest.len(), at),
            }
        };
        match n {
            n if n > 0 && some && op == OpKind::Read => return (Ok(n as usize), calls),
            n if n > 0 => done += n as usize,
            0 if op == OpKind::Read => break,
            0 => return (Err(io::Error::new(io::ErrorKind::WriteZero, "pwrite wrote nothing")), calls),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return (Err(e), calls);
                }
            }
        }
    }
    (Ok(done), calls)
}

/// Adds one finished transfer to `counters`.
pub(crate) fn count(counters: &mut Counters, result: &io::Result<usize>, syscalls: u64) {
    counters.syscalls += syscalls;
    counters.resubmits += syscalls.saturating_sub(1);
    counters.ops += 1;
    if let Ok(n) = result {
        counters.bytes += *n as u64;
    }
}

/// Page-aligned trusted buffers, one per slot, carved from one `Vec` (so O_DIRECT
/// works if the caller insists on it).
struct AlignedSlots {
    raw: Vec<u8>,
    start: usize,
    stride: usize,
}

impl AlignedSlots {
    fn new(depth: usize, buffer_len: usize) -> Self {
        let stride = buffer_len.div_ceil(PAGE) * PAGE;
        let raw = vec![0u8; depth * stride + PAGE];
        let start = raw.as_ptr().align_offset(PAGE);
        Self { raw, start, stride }
    }

    fn slot(&mut self, slot: usize, len: usize) -> &mut [u8] {
        let at = self.start + slot * self.stride;
        &mut self.raw[at..at + len]
    }
}

/// Plain pread/pwrite, performed at submit, from page-aligned trusted buffers.
pub struct SyncBackend {
    slots: SlotQueue,
    buffers: AlignedSlots,
    counters: Counters,
    faults: Option<Arc<FaultPlan>>,
}

impl SyncBackend {
    /// A backend of `depth` slots of `buffer_len` bytes each (both non-zero).
    pub fn new(depth: usize, buffer_len: usize) -> io::Result<Self> {
        let slots = SlotQueue::new(depth, buffer_len)?;
        Ok(Self {
            slots,
            buffers: AlignedSlots::new(depth, buffer_len),
            counters: Counters::default(),
            faults: None,
        })
    }
}

impl SyncBackend {
    fn read_into_slot(
        &mut self,
        slot: usize,
        fd: RawFd,
        offset: u64,
        len: usize,
        some: bool,
    ) -> io::Result<()> {
        self.slots.check_read(slot, len)?;
        let fault = faults::next(&self.faults, OpKind::Read);
        let buf = KernelAddr::lend(self.buffers.slot(slot, len));
        // SAFETY: the slot's trusted buffer is lent for this one synchronous call.
        let (result, calls) = unsafe { transfer_all(fd, OpKind::Read, buf, offset, fault, some) };
        count(&mut self.counters, &result, calls);
        self.slots.complete(slot, result);
        Ok(())
    }
}

impl Backend for SyncBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sync
    }

    crate::sync::slot_queue_methods!();

    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
        self.slots.check_stage(slot, at, data.len())?;
        self.buffers.slot(slot, at + data.len())[at..].copy_from_slice(data);
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
        let buf = self.buffers.slot(slot, total);
        buf[len..].fill(0);
        let fault = faults::next(&self.faults, OpKind::Write);
        // SAFETY: the slot's trusted buffer is lent for this one synchronous call.
        let (result, calls) =
            unsafe { transfer_all(fd, OpKind::Write, KernelAddr::lend(buf), offset, fault, false) };
        count(&mut self.counters, &result, calls);
        self.slots.complete(slot, result);
        Ok(())
    }

    fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.read_into_slot(slot, fd, offset, len, false)
    }

    fn read_some(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
        self.read_into_slot(slot, fd, offset, len, true)
    }

    fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]) {
        self.slots.check_copy_out(slot, at, out.len());
        out.copy_from_slice(&self.buffers.slot(slot, at + out.len())[at..]);
    }

    fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
        fsync_counted(fd, &self.faults, &mut self.counters).0
    }

    fn file_op(&mut self, op: FileOp<'_>) -> io::Result<FileOpOutput> {
        crate::files::counted(op, &mut self.counters, 0)
    }

    fn set_faults(&mut self, plan: Option<Arc<FaultPlan>>) -> bool {
        self.faults = plan;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_slots_and_lengths() {
        let mut b = SyncBackend::new(2, 4096).unwrap();
        assert!(SyncBackend::new(0, 4096).is_err());
        assert!(SyncBackend::new(1, 0).is_err());
        let f = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        assert_eq!(b.write(2, fd, 0, b"x", 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(b.write(0, fd, 0, &[0; 4097], 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(b.write(0, fd, 0, b"x", 4097).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(b.read(0, fd, 0, 4097).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        b.write(0, fd, 0, b"abc", 0).unwrap();
        assert_eq!(b.write(0, fd, 0, b"abc", 0).unwrap_err().kind(), io::ErrorKind::InvalidInput, "busy");
        assert_eq!(b.in_flight(), 1);
        let mut done = Vec::new();
        b.wait(&mut done).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].slot, 0);
        assert_eq!(done[0].result.as_ref().unwrap(), &3);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.counters().exits, 0);
    }

    #[test]
    fn pads_with_zeros_and_buffers_are_page_aligned() {
        let mut b = SyncBackend::new(3, 5000).unwrap();
        for s in 0..3 {
            assert_eq!(b.buffers.slot(s, 1).as_ptr() as usize % PAGE, 0);
        }
        let f = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        b.write(1, fd, 0, &[0xaa; 4096], 0).unwrap();
        b.write(2, fd, 0, b"hi", 512).unwrap();
        let mut done = Vec::new();
        b.wait(&mut done).unwrap();
        assert_eq!(done[1].result.as_ref().unwrap(), &512);
        b.read(0, fd, 0, 4096).unwrap();
        b.wait(&mut done).unwrap();
        let mut out = vec![1u8; 4096];
        b.copy_out(0, &mut out);
        assert_eq!(&out[..2], b"hi");
        assert!(out[2..512].iter().all(|&x| x == 0));
        assert!(out[512..].iter().all(|&x| x == 0xaa));
    }
}
