//! [`NullBackend`]: accepts writes and discards them. For benchmarks that measure
//! sealing and scheduling without any IO (e.g. runtime scaling across vCPUs).

use std::io;
use std::os::fd::RawFd;

use crate::backend::{Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput};
use crate::sync::SlotQueue;

/// Discards every write; reads are unsupported.
pub struct NullBackend {
    slots: SlotQueue,
    counters: Counters,
}

impl NullBackend {
    /// A backend of `depth` slots of `buffer_len` bytes.
    pub fn new(depth: usize, buffer_len: usize) -> io::Result<Self> {
        Ok(Self { slots: SlotQueue::new(depth, buffer_len)?, counters: Counters::default() })
    }
}

impl Backend for NullBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Null
    }

    crate::sync::slot_queue_methods!();

    fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
        self.slots.check_stage(slot, at, data.len())
    }

    fn write_staged(
        &mut self,
        slot: usize,
        _fd: RawFd,
        _offset: u64,
        len: usize,
        pad_to: usize,
    ) -> io::Result<()> {
        let len = self.slots.check_write(slot, len, pad_to)?;
        self.counters.bytes += len as u64;
        self.counters.ops += 1;
        self.slots.complete(slot, Ok(len));
        Ok(())
    }

    fn read(&mut self, _slot: usize, _fd: RawFd, _offset: u64, _len: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the null backend discards data; nothing can be read back",
        ))
    }

    fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]) {
        self.slots.check_copy_out(slot, at, out.len());
        out.fill(0);
    }

    fn fsync(&mut self, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }

    /// Real system calls (the files exist; only their data is discarded).
    fn file_op(&mut self, op: FileOp<'_>) -> std::io::Result<FileOpOutput> {
        crate::files::counted(op, &mut self.counters, 0)
    }
}
