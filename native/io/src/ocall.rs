//! [`OcallBackend`]: what Occlum's hostfs does today. Every pread/pwrite/fsync is
//! an OCALL: the data goes through one untrusted bounce buffer, the syscall runs on
//! the host, and the enclave exit is charged by the [`OcallModel`] and counted.
//!
//! A write copies the caller's (trusted) bytes into the bounce buffer, as the
//! OCALL's marshalling does, and pwrites from there. A read preads into the bounce
//! buffer and copies the bytes into the slot's trusted buffer before the "OCALL"
//! returns, so the next operation may reuse the bounce buffer; `copy_out` then
//! reads trusted memory. Operations complete at submit.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::backend::{Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput, OpKind};
use crate::faults::{self, FaultPlan};
use crate::model::OcallModel;
use crate::sync::{count, fsync_counted, transfer_all, SlotQueue};
use crate::untrusted::UntrustedRegion;

/// Pread/pwrite through an untrusted bounce buffer, each charged as modeled exits.
pub struct OcallBackend {
    model: OcallModel,
    slots: SlotQueue,
    /// Trusted per-slot buffers, holding what reads brought in.
    trusted: Vec<Vec<u8>>,
    /// The single untrusted bounce buffer, `buffer_len` bytes (rounded up to pages).
    bounce: UntrustedRegion,
    counters: Counters,
    faults: Option<Arc<FaultPlan>>,
}

impl OcallBackend {
    /// A backend of `depth` slots of `buffer_len` bytes each, charging exits by `model`.
    pub fn new(depth: usize, buffer_len: usize, model: OcallModel) -> io::Result<Self> {
        let slots = SlotQueue::new(depth, buffer_len)?;
        Ok(Self {
            model,
            slots,
            trusted: (0..depth).map(|_| vec![0u8; buffer_len]).collect(),
            bounce: UntrustedRegion::new(buffer_len)?,
            counters: Counters::default(),
            faults: None,
        })
    }

    /// The exit model in use.
    pub fn model(&self) -> OcallModel {
        self.model
    }

    /// Runs pread/pwrite on the first `len` bytes of the bounce buffer, then charges
    /// and counts the exits: those of the request, plus one per resubmitted remainder.
    fn ocall(&mut self, fd: RawFd, op: OpKind, offset: u64, len: usize, some: bool) -> io::Result<usize> {
        let buf = self.bounce.kernel_addr(0, len);
        let fault = faults::next(&self.faults, op);
        // SAFETY: the bounce region is owned by `self`, borrowed mutably through
        // `&mut self` for the whole call, so it stays mapped and nothing else touches
        // it; only the kernel reads or writes it here.
        let (result, calls) = unsafe { transfer_all(fd, op, buf, offset, fault, some) };
        let exits = self.model.exits_for(len) + calls.saturating_sub(1);
        self.model.charge(exits);
        self.counters.exits += exits;
        count(&mut self.counters, &result, calls);
        result
    }
}

impl OcallBackend {
    fn read_into_slot(
        &mut self,
        slot: usize,
        fd: RawFd,
        offset: u64,
        len: usize,
        some: bool,
    ) -> io::Result<()> {
        self.slots.check_read(slot, len)?;
        let result = self.ocall(fd, OpKind::Read, offset, len, some);
        if let Ok(n) = result {
            self.bounce.copy_out(0, &mut self.trusted[slot][..n]);
        }
        self.slots.complete(slot, result);
        Ok(())
    }
}

impl Backend for OcallBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ocall
    }

    crate::sync::slot_queue_methods!();

    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
        self.slots.check_stage(slot, at, data.len())?;
        self.trusted[slot][at..at + data.len()].copy_from_slice(data);
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
        // The OCALL's marshalling: the enclave's bytes into the untrusted bounce buffer.
        self.bounce.copy_in(0, &self.trusted[slot][..len]);
        self.bounce.zero(len, total - len);
        let result = self.ocall(fd, OpKind::Write, offset, total, false);
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
        out.copy_from_slice(&self.trusted[slot][at..at + out.len()]);
    }

    fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
        let (result, calls) = fsync_counted(fd, &self.faults, &mut self.counters);
        // Each syscall is an exit on this path.
        self.model.charge(calls);
        self.counters.exits += calls;
        result
    }

    /// One exit each, as Occlum's hostfs makes them (open, close, unlink, fstat,
    /// ftruncate, fallocate are OCALLs there).
    fn file_op(&mut self, op: FileOp<'_>) -> io::Result<FileOpOutput> {
        let result = crate::files::counted(op, &mut self.counters, 1);
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

    fn model(triple: bool) -> OcallModel {
        OcallModel { cycles_per_exit: 10, triple_above: triple.then_some(16384) }
    }

    fn write_n(b: &mut OcallBackend, fd: RawFd, n: usize, size: usize) {
        let data = vec![7u8; size];
        let mut done = Vec::new();
        for i in 0..n {
            b.write(i % b.depth(), fd, (i * size) as u64, &data, 0).unwrap();
            if b.in_flight() == b.depth() {
                b.wait(&mut done).unwrap();
            }
        }
        b.wait(&mut done).unwrap();
        assert_eq!(done.len(), n);
        assert!(done.iter().all(|c| *c.result.as_ref().unwrap() == size));
    }

    #[test]
    fn exits_are_exact() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_raw_fd();
        let mut b = OcallBackend::new(4, 64 << 10, model(true)).unwrap();
        write_n(&mut b, fd, 10, 4096);
        assert_eq!(b.counters().exits, 10);
        let mut b = OcallBackend::new(4, 64 << 10, model(true)).unwrap();
        write_n(&mut b, fd, 10, 64 << 10);
        assert_eq!(b.counters().exits, 30);
        b.fsync(fd).unwrap();
        assert_eq!(b.counters().exits, 31);
        assert_eq!(b.counters().ops, 11);
        let mut b = OcallBackend::new(4, 64 << 10, model(false)).unwrap();
        write_n(&mut b, fd, 10, 64 << 10);
        assert_eq!(b.counters().exits, 10);
        assert_eq!(b.counters().syscalls, 10);
        assert_eq!(b.counters().bytes, 10 * (64 << 10));
        b.fsync(fd).unwrap();
        assert_eq!(b.counters().exits, 11);
    }

    #[test]
    fn reads_land_in_the_slot_not_the_shared_bounce_buffer() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_raw_fd();
        let mut b = OcallBackend::new(2, 4096, model(true)).unwrap();
        let mut done = Vec::new();
        b.write(0, fd, 0, b"first", 0).unwrap();
        b.write(1, fd, 5, b"second", 0).unwrap();
        b.wait(&mut done).unwrap();
        b.read(0, fd, 0, 5).unwrap();
        b.read(1, fd, 5, 6).unwrap();
        b.wait(&mut done).unwrap();
        let (mut a, mut c) = ([0u8; 5], [0u8; 6]);
        b.copy_out(0, &mut a);
        b.copy_out(1, &mut c);
        assert_eq!((&a, &c), (b"first", b"second"));
        assert_eq!(b.counters().exits, 4);
    }
}
