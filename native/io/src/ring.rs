//! [`RingSlots`]: the trusted side of an io_uring backend, without the ring. Pure
//! logic (core + alloc): [`crate::uring::UringBackend`] drives it with the
//! `io-uring` crate, and a backend on Occlum's own io_uring can drive it the same way.
//!
//! - Layout: `depth` data slots of `slot_len` bytes (whole pages) in one untrusted
//!   region, slot `i` at `i * slot_len`, registered-buffer index `i`; one more slot
//!   (`depth`), the control slot, carries fsync and the file's lifecycle (open,
//!   close, unlink, stat, truncate, allocate), with [`CONTROL_LEN`] bytes of the
//!   region after the data slots for what the kernel reads or writes for them (a
//!   path, a `statx` buffer).
//! - Each submission's `user_data` comes from [`SlotTable`] (generation ‖ slot), so
//!   every completion is validated before anything uses it.
//! - A validated completion becomes a [`Step`]: the operation finished (a
//!   [`Completion`] for the caller), or its remainder must be submitted again (a short
//!   transfer, EINTR, EAGAIN). A read that returns 0 bytes ended at end of file; a
//!   write that returns 0 failed (`WriteZero`).
//!
//! The driver of a ring only turns [`Submission`]s into SQEs and feeds every CQE's
//! `(user_data, result)` to [`RingSlots::complete`], checking the CQ's fill level with
//! [`crate::validate::check_ring`] first. A [`Rejected`] completion means the ring can
//! no longer be trusted: stop using it.

use alloc::format;
use alloc::vec::Vec;

use crate::backend::{Completion, Counters, OpKind, RawFd};
use crate::errno;
use crate::error::{Error, ErrorKind, Result};
use crate::untrusted::PAGE;
use crate::validate::{Outcome, Rejected, SlotTable};

/// Most slots one ring may have (registered-buffer indexes are `u16`; the kernel
/// takes at most 4096 SQ entries by default).
pub const MAX_DEPTH: usize = 4096;

/// Bytes of untrusted memory the control slot has: a page for a path (the kernel's
/// `PATH_MAX` with its NUL), a page for a `statx` buffer.
pub const CONTROL_LEN: usize = 2 * PAGE;

/// Where in the control area a path goes, and where `statx` writes.
pub const CONTROL_PATH: usize = 0;
/// See [`CONTROL_PATH`].
pub const CONTROL_STATX: usize = PAGE;

/// What an SQE does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOp {
    /// `IORING_OP_READ_FIXED` into the slot's registered buffer.
    ReadFixed,
    /// `IORING_OP_WRITE_FIXED` from the slot's registered buffer.
    WriteFixed,
    /// The control slot's operation (fsync, or a file-lifecycle op), which the
    /// driver built: its result is at most [`Submission::len`], and never resubmitted
    /// for being short.
    Control,
}

/// One SQE to push, described without the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The SQE's `user_data` (generation ‖ slot); its completion must carry it.
    pub user_data: u64,
    /// What to do.
    pub op: SubmitOp,
    /// The file the operation was started on (a plain descriptor: any ring can use it).
    pub fd: RawFd,
    /// Offset of the buffer in the untrusted region (the control area for
    /// [`SubmitOp::Control`]); `buf_offset + len ≤ region_len()` for data slots.
    pub buf_offset: usize,
    /// Registered-buffer index: the slot (0 for control ops).
    pub buf_index: u16,
    /// Bytes to transfer (the remainder of the operation); for a control op, the
    /// largest result it may have (0, or `i32::MAX` for a descriptor).
    pub len: u32,
    /// Offset in the file.
    pub file_offset: u64,
}

/// What a validated completion means.
#[derive(Debug)]
pub enum Step {
    /// The operation is over (done, short at end of file, or failed): hand it to the caller.
    Finished(Completion),
    /// A short transfer or EINTR/EAGAIN: push [`RingSlots::submit`] of this slot again.
    Resubmit(usize),
}

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    fd: RawFd,
    offset: u64,
    len: usize,
    done: usize,
    /// The first transfer finishes it, short or not ([`RingSlots::begin_some`]).
    some: bool,
}

/// The slots of one ring: layout, the operation on each, and the validator's table.
#[derive(Debug)]
pub struct RingSlots {
    table: SlotTable,
    ops: Vec<Option<Op>>,
    depth: usize,
    slot_len: usize,
}

impl RingSlots {
    /// `depth` slots (1 to [`MAX_DEPTH`]) of `buffer_len` bytes rounded up to whole
    /// pages, plus the control slot.
    pub fn new(depth: usize, buffer_len: usize) -> Result<Self> {
        if depth == 0 || depth > MAX_DEPTH {
            return Err(Error::new(ErrorKind::InvalidInput, "queue depth must be 1 to 4096"));
        }
        let len = buffer_len.max(1);
        let slot_len = (len / PAGE + usize::from(len % PAGE != 0)) * PAGE; // div_ceil: Rust 1.73 (Occlum: 1.66)
        if slot_len > u32::MAX as usize {
            return Err(Error::new(ErrorKind::InvalidInput, "buffer too large for io_uring"));
        }
        Ok(Self { table: SlotTable::new(depth + 1), ops: alloc::vec![None; depth + 1], depth, slot_len })
    }

    /// Data slots.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Bytes per slot (whole pages).
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Bytes of untrusted memory the slots need: `depth * slot_len` and the
    /// control area.
    pub fn region_len(&self) -> usize {
        self.depth * self.slot_len + CONTROL_LEN
    }

    /// The control slot (`depth`): never a caller's.
    pub fn control_slot(&self) -> usize {
        self.depth
    }

    /// Where the control area starts in the region.
    pub fn control_offset(&self) -> usize {
        self.depth * self.slot_len
    }

    /// SQ entries for the ring: room for every slot at once, a power of two.
    pub fn sq_entries(&self) -> u32 {
        (self.depth as u32 + 1).next_power_of_two()
    }

    /// Operations in flight (submitted, completion not yet validated).
    pub fn in_flight(&self) -> usize {
        self.table.in_flight()
    }

    /// Whether `slot` has an operation in flight.
    pub fn is_busy(&self, slot: usize) -> bool {
        self.table.is_busy(slot)
    }

    /// The `user_data` of the operation in flight on `slot`, if any.
    pub fn user_data(&self, slot: usize) -> Option<u64> {
        self.table.user_data(slot)
    }

    /// The file of the operation last started on `slot`, if any.
    pub fn fd(&self, slot: usize) -> Option<RawFd> {
        self.ops.get(slot).copied().flatten().map(|op| op.fd)
    }

    /// Checks that data slot `slot` exists and is idle.
    pub fn check_free(&self, slot: usize) -> Result<()> {
        if slot >= self.depth {
            return Err(Error::new(ErrorKind::InvalidInput, format!("slot {slot} out of range")));
        }
        if self.table.is_busy(slot) {
            return Err(Error::new(ErrorKind::InvalidInput, format!("slot {slot} is in flight")));
        }
        Ok(())
    }

    /// Records a read or write of `len` bytes at `offset` of `fd` on idle data slot
    /// `slot`; returns the slot's offset in the region (where a write's bytes go).
    /// Nothing is in flight until [`RingSlots::submit`].
    pub fn begin(&mut self, slot: usize, kind: OpKind, fd: RawFd, offset: u64, len: usize) -> Result<usize> {
        self.check_free(slot)?;
        if len > self.slot_len {
            let what = match kind {
                OpKind::Write => "write larger than a slot buffer",
                OpKind::Read => "read larger than a slot buffer",
            };
            return Err(Error::new(ErrorKind::InvalidInput, what));
        }
        self.ops[slot] = Some(Op { kind, fd, offset, len, done: 0, some: false });
        Ok(slot * self.slot_len)
    }

    /// As [`begin`](Self::begin) for a read that its first transfer finishes, short
    /// or not (`Backend::read_some`).
    pub fn begin_some(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> Result<usize> {
        let at = self.begin(slot, OpKind::Read, fd, offset, len)?;
        if let Some(op) = self.ops[slot].as_mut() {
            op.some = true;
        }
        Ok(at)
    }

    /// Records a control op (fsync, or a file-lifecycle op) on `fd` (-1 for none)
    /// whose result may be at most `max_result`; returns the control slot. Panics if
    /// one is already in flight (control ops run one at a time, to their end).
    pub fn begin_control(&mut self, fd: RawFd, max_result: u32) -> usize {
        let slot = self.depth;
        assert!(!self.table.is_busy(slot), "a control op is already in flight");
        self.ops[slot] =
            Some(Op { kind: OpKind::Write, fd, offset: 0, len: max_result as usize, done: 0, some: false });
        slot
    }

    /// Puts the (remaining part of the) operation recorded on `slot` in flight and
    /// describes the SQE to push for it. Panics if nothing was recorded, or the slot
    /// is already in flight (caller bugs).
    pub fn submit(&mut self, slot: usize) -> Submission {
        let op = self.ops.get(slot).copied().flatten().expect("an operation recorded before submit");
        // `op.done ≤ op.len ≤ slot_len ≤ u32::MAX` (a control op's `len` is a u32).
        let len = (op.len - op.done) as u32;
        let user_data = self.table.start(slot, len);
        if slot == self.depth {
            let fd = op.fd;
            return Submission {
                user_data,
                op: SubmitOp::Control,
                fd,
                buf_offset: self.control_offset(),
                buf_index: 0,
                len,
                file_offset: 0,
            };
        }
        Submission {
            user_data,
            op: match op.kind {
                OpKind::Read => SubmitOp::ReadFixed,
                OpKind::Write => SubmitOp::WriteFixed,
            },
            fd: op.fd,
            buf_offset: slot * self.slot_len + op.done,
            buf_index: slot as u16,
            len,
            file_offset: op.offset + op.done as u64,
        }
    }

    /// Checks a completion and applies it: finished (a data slot's is counted in
    /// `counters`: `ops`, `bytes`) or to be resubmitted (`resubmits`). On rejection
    /// nothing changes.
    pub fn complete(
        &mut self,
        user_data: u64,
        result: i32,
        counters: &mut Counters,
    ) -> core::result::Result<Step, Rejected> {
        let (slot, result) = match self.table.complete(user_data, result)? {
            Outcome::Done { slot, bytes } => {
                let slot = slot as usize;
                let op = self.ops[slot].as_mut().expect("a validated slot has an operation");
                op.done += bytes as usize;
                let finished = op.done == op.len || slot == self.depth || (op.some && bytes > 0);
                let eof = op.kind == OpKind::Read && bytes == 0;
                if finished || eof {
                    (slot, Ok(op.done))
                } else if bytes == 0 {
                    (slot, Err(Error::new(ErrorKind::WriteZero, "write made no progress")))
                } else {
                    counters.resubmits += 1;
                    return Ok(Step::Resubmit(slot));
                }
            }
            Outcome::Failed { slot, errno } => {
                let slot = slot as usize;
                if errno == errno::EINTR || errno == errno::EAGAIN {
                    counters.resubmits += 1;
                    return Ok(Step::Resubmit(slot));
                }
                (slot, Err(Error::from_raw_os_error(errno)))
            }
        };
        self.ops[slot] = None;
        // A control op's result is no byte count (a descriptor, or 0): its driver
        // counts it as what it was.
        if slot != self.depth {
            if let Ok(n) = result {
                counters.bytes += n as u64;
            }
            counters.ops += 1;
        }
        Ok(Step::Finished(Completion { slot, result }))
    }

    /// Panics unless data slot `slot` is idle and holds bytes `at .. at + len`
    /// (caller bugs); returns where they are in the region, to copy a completed read
    /// out of.
    pub fn copy_out_offset(&self, slot: usize, at: usize, len: usize) -> usize {
        assert!(slot < self.depth && !self.table.is_busy(slot), "copy_out from a busy or unknown slot");
        assert!(matches!(at.checked_add(len), Some(end) if end <= self.slot_len), "copy_out beyond a slot");
        slot * self.slot_len + at
    }

    /// Panics unless the control slot is idle (caller bug); returns where control
    /// bytes `at .. at + len` are in the region.
    pub fn control_bytes(&self, at: usize, len: usize) -> usize {
        assert!(!self.table.is_busy(self.depth), "control area in use");
        assert!(matches!(at.checked_add(len), Some(end) if end <= CONTROL_LEN), "beyond the control area");
        self.control_offset() + at
    }

    /// Where bytes `at .. at + len` of idle data slot `slot` are in the region, to
    /// stage part of a write there; an error if the slot is busy or they do not fit.
    pub fn stage_offset(&self, slot: usize, at: usize, len: usize) -> Result<usize> {
        self.check_free(slot)?;
        if !matches!(at.checked_add(len), Some(end) if end <= self.slot_len) {
            return Err(Error::new(ErrorKind::InvalidInput, "staged bytes beyond a slot buffer"));
        }
        Ok(slot * self.slot_len + at)
    }
}

/// `STATX_TYPE | STATX_SIZE`: what a stat on the ring asks for.
pub const STATX_WANTED: u32 = 0x1 | 0x200;

/// Bytes of `struct statx` read back (the kernel writes 256).
pub const STATX_LEN: usize = 256;

/// The type and length in a `struct statx` the kernel wrote into untrusted memory,
/// copied out once into `raw`. Checked: both fields must be reported (`stx_mask`),
/// and the length must be a valid file offset.
pub fn parse_statx(raw: &[u8; STATX_LEN]) -> Result<crate::backend::FileStat> {
    let u32_at = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
    let mask = u32_at(0);
    let mode = u32::from(u16::from_le_bytes([raw[28], raw[29]]));
    let mut size = [0u8; 8];
    size.copy_from_slice(&raw[40..48]);
    let len = u64::from_le_bytes(size);
    if mask & STATX_WANTED != STATX_WANTED {
        return Err(Error::new(ErrorKind::InvalidData, "statx did not report the file's type and length"));
    }
    if len > i64::MAX as u64 {
        return Err(Error::new(ErrorKind::InvalidData, "statx reported an impossible file length"));
    }
    Ok(crate::backend::FileStat { kind: crate::backend::FileType::from_mode(mode), len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(step: Step) -> Completion {
        match step {
            Step::Finished(c) => c,
            Step::Resubmit(slot) => panic!("slot {slot} resubmitted, expected finished"),
        }
    }

    #[test]
    fn layout_and_limits() {
        let r = RingSlots::new(3, 5000).unwrap();
        assert_eq!((r.depth(), r.slot_len(), r.region_len(), r.control_slot()), (3, 2 * PAGE, 8 * PAGE, 3));
        assert_eq!((r.control_offset(), r.control_bytes(CONTROL_STATX, 256)), (6 * PAGE, 7 * PAGE));
        assert_eq!(r.sq_entries(), 4);
        for bad in [0, MAX_DEPTH + 1] {
            assert_eq!(RingSlots::new(bad, 1).unwrap_err().kind(), ErrorKind::InvalidInput);
        }
        assert_eq!(RingSlots::new(1, u32::MAX as usize + 1).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn a_short_write_is_resubmitted_for_its_remainder() {
        let mut r = RingSlots::new(2, PAGE).unwrap();
        let mut c = Counters::default();
        assert_eq!(r.begin(1, OpKind::Write, 7, 100, 1000).unwrap(), PAGE);
        let first = r.submit(1);
        assert_eq!(
            first,
            Submission {
                user_data: first.user_data,
                op: SubmitOp::WriteFixed,
                fd: 7,
                buf_offset: PAGE,
                buf_index: 1,
                len: 1000,
                file_offset: 100,
            }
        );
        assert_eq!(r.check_free(1).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(matches!(r.complete(first.user_data, 600, &mut c), Ok(Step::Resubmit(1))));
        let rest = r.submit(1);
        assert_eq!((rest.buf_offset, rest.len, rest.file_offset), (PAGE + 600, 400, 700));
        assert!(matches!(r.complete(first.user_data, 400, &mut c), Err(Rejected::StaleGeneration { .. })));
        let done = finished(r.complete(rest.user_data, 400, &mut c).unwrap());
        assert_eq!((done.slot, done.result.unwrap()), (1, 1000));
        assert_eq!((c.ops, c.bytes, c.resubmits), (1, 1000, 1));
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.copy_out_offset(1, 0, 10), PAGE);
        assert_eq!(r.copy_out_offset(1, 5, 10), PAGE + 5);
        assert_eq!(r.stage_offset(1, 100, 10).unwrap(), PAGE + 100);
        assert!(r.stage_offset(1, PAGE - 5, 10).is_err(), "beyond the slot");
    }

    #[test]
    fn eof_errno_and_no_progress() {
        let mut r = RingSlots::new(1, PAGE).unwrap();
        let mut c = Counters::default();
        r.begin(0, OpKind::Read, 3, 0, 100).unwrap();
        let s = r.submit(0);
        assert_eq!(s.op, SubmitOp::ReadFixed);
        assert!(matches!(r.complete(s.user_data, -errno::EINTR, &mut c), Ok(Step::Resubmit(0))));
        let s = r.submit(0);
        assert!(matches!(r.complete(s.user_data, 40, &mut c), Ok(Step::Resubmit(0))));
        let s = r.submit(0);
        assert_eq!(finished(r.complete(s.user_data, 0, &mut c).unwrap()).result.unwrap(), 40, "end of file");

        r.begin(0, OpKind::Write, 3, 0, 100).unwrap();
        let s = r.submit(0);
        let err = finished(r.complete(s.user_data, 0, &mut c).unwrap()).result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WriteZero);

        r.begin(0, OpKind::Write, 3, 0, 100).unwrap();
        let s = r.submit(0);
        let err = finished(r.complete(s.user_data, -errno::ENOSPC, &mut c).unwrap()).result.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno::ENOSPC));
        assert_eq!(r.begin(0, OpKind::Read, 3, 0, PAGE + 1).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn control_ops_use_their_own_slot_and_results_are_bounded() {
        let mut r = RingSlots::new(2, PAGE).unwrap();
        let mut c = Counters::default();
        let slot = r.begin_control(9, 0);
        assert_eq!(slot, 2);
        let s = r.submit(slot);
        assert_eq!((s.op, s.fd, s.len, s.buf_offset), (SubmitOp::Control, 9, 0, 2 * PAGE));
        assert!(matches!(r.complete(s.user_data, 1, &mut c), Err(Rejected::TooLong { .. })));
        let done = finished(r.complete(s.user_data, 0, &mut c).unwrap());
        assert_eq!((done.slot, done.result.unwrap()), (2, 0));
        assert_eq!(r.check_free(2).unwrap_err().kind(), ErrorKind::InvalidInput, "not a data slot");
        // An open's result is a descriptor: any non-negative int, taken whole.
        let slot = r.begin_control(-1, i32::MAX as u32);
        let s = r.submit(slot);
        assert_eq!(finished(r.complete(s.user_data, 1 << 20, &mut c).unwrap()).result.unwrap(), 1 << 20);
        let slot = r.begin_control(-1, i32::MAX as u32);
        let s = r.submit(slot);
        assert!(matches!(r.complete(s.user_data, -12345, &mut c), Err(Rejected::UnknownErrno { .. })));
    }

    #[test]
    fn statx_is_parsed_and_checked() {
        let mut raw = [0u8; STATX_LEN];
        raw[0..4].copy_from_slice(&STATX_WANTED.to_le_bytes());
        raw[28..30].copy_from_slice(&0o100600u16.to_le_bytes());
        raw[40..48].copy_from_slice(&5000u64.to_le_bytes());
        let st = parse_statx(&raw).unwrap();
        assert_eq!((st.kind, st.len), (crate::backend::FileType::Regular, 5000));
        raw[28..30].copy_from_slice(&0o010644u16.to_le_bytes());
        assert_eq!(parse_statx(&raw).unwrap().kind, crate::backend::FileType::Other, "a FIFO");
        raw[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_statx(&raw).unwrap_err().kind(), ErrorKind::InvalidData);
        raw[40..48].copy_from_slice(&1u64.to_le_bytes());
        raw[0..4].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(parse_statx(&raw).unwrap_err().kind(), ErrorKind::InvalidData, "size not reported");
    }
}
