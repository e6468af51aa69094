//! [`NullBackend`]: accepts writes and discards them. For benchmarks that measure
//! sealing and scheduling without any IO (e.g. runtime scaling across vCPUs).

use std::io;
use std::os::fd::RawFd;

use crate::backend::{Backend, BackendKind, Completion, Counters};
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

    fn depth(&self) -> usize {
        self.slots.depth()
    }

    fn buffer_len(&self) -> usize {
        self.slots.buffer_len()
    }

    fn write(&mut self, slot: usize, _fd: RawFd, _offset: u64, data: &[u8], pad_to: usize) -> io::Result<()> {
        let len = self.slots.check_write(slot, data.len(), pad_to)?;
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

    fn copy_out(&mut self, slot: usize, out: &mut [u8]) {
        self.slots.check_copy_out(slot, out.len());
        out.fill(0);
    }

    fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.slots.drain(out);
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.slots.in_flight()
    }

    fn fsync(&mut self, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters
    }
}
