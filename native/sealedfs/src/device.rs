//! Where sealed bytes go: positional IO on one host file.

/// An errno from the host (or from the device's own checks, e.g. a rejected
/// completion is reported as `EIO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceError(pub i32);

/// Linux errno values this crate reports (the ABI's numbers: the crate is `no_std`).
pub mod errno {
    /// I/O error; also every integrity or format failure.
    pub const EIO: i32 = 5;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File too large (more than 2^32 segments).
    pub const EFBIG: i32 = 27;
}

/// Fills a buffer with fresh random bytes (salts and nonce prefixes). In Occlum:
/// `sgx_read_rand`.
pub type FillRandom = fn(&mut [u8]) -> Result<(), DeviceError>;

/// Positional IO on one host file, with writes that may be queued.
///
/// Every buffer passed in is trusted memory: a device copies data out to untrusted
/// memory before it submits a write, and copies what it read into `buf` exactly
/// once. A device that pipelines writes reports a failed write at a later call or
/// at [`flush`](SegmentDevice::flush). Callers never read a range a queued write
/// covers, and flush before `file_len`, `set_len` and `sync`:
/// [`SealedFile`](crate::SealedFile) flushes before it reads back what it wrote,
/// before it truncates and when it finalizes.
pub trait SegmentDevice {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, DeviceError>;
    /// Writes all of `data` at `offset`, or queues it (the bytes are copied before
    /// this returns).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), DeviceError>;
    /// Waits until every queued write has completed; reports the first failure.
    fn flush(&mut self) -> Result<(), DeviceError>;
    /// The host file's length.
    fn file_len(&mut self) -> Result<u64, DeviceError>;
    /// Truncates or extends the host file.
    fn set_len(&mut self, len: u64) -> Result<(), DeviceError>;
    /// Makes completed writes durable (fsync).
    fn sync(&mut self) -> Result<(), DeviceError>;
}
