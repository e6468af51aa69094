//! An in-memory [`SegmentDevice`]: the host file is a `Vec<u8>` anyone may tamper with.

use alloc::vec::Vec;

use crate::device::{DeviceError, SegmentDevice};

/// A host file in memory. `data` is public so tests can play the hostile host.
/// Writes are queued until [`flush`](SegmentDevice::flush), and a read that
/// overlaps a queued write, or a length query or truncation with writes queued,
/// panics: a real device would not order those for you, so a missing flush in
/// [`SealedFile`](crate::SealedFile) shows up in tests.
#[derive(Debug, Default)]
pub struct MemDevice {
    /// The file's bytes as the host sees them (after the last flush).
    pub data: Vec<u8>,
    queued: Vec<(u64, Vec<u8>)>,
    /// Writes submitted.
    pub writes: u64,
    /// Reads submitted.
    pub reads: u64,
    /// Flushes that had writes to wait for.
    pub flushes: u64,
}

impl MemDevice {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file holding `data`.
    pub fn with_data(data: Vec<u8>) -> Self {
        Self { data, ..Self::default() }
    }

    /// Writes still queued.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    fn apply(&mut self) {
        for (offset, bytes) in core::mem::take(&mut self.queued) {
            let end = offset as usize + bytes.len();
            if self.data.len() < end {
                self.data.resize(end, 0);
            }
            self.data[offset as usize..end].copy_from_slice(&bytes);
        }
    }
}

impl SegmentDevice for MemDevice {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, DeviceError> {
        let end = offset + buf.len() as u64;
        let overlaps = self.queued.iter().any(|(o, b)| *o < end && offset < *o + b.len() as u64);
        assert!(!overlaps, "read of {offset}..{end} overlaps a queued write");
        self.reads += 1;
        let start = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        self.writes += 1;
        self.queued.push((offset, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        if !self.queued.is_empty() {
            self.flushes += 1;
        }
        self.apply();
        Ok(())
    }

    fn file_len(&mut self) -> Result<u64, DeviceError> {
        assert!(self.queued.is_empty(), "len with writes unflushed");
        Ok(self.data.len() as u64)
    }

    fn set_len(&mut self, len: u64) -> Result<(), DeviceError> {
        assert!(self.queued.is_empty(), "set_len with writes unflushed");
        self.data.resize(len as usize, 0);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DeviceError> {
        self.apply();
        Ok(())
    }
}
