//! How much memory a stream takes, and a trusted buffer that grows with the data.
//!
//! Nothing is sized from a header field alone: a header is not authenticated until
//! a segment opens under the key it derives, and a forged segment size of 1 GiB must
//! not make a reader allocate gigabytes. Buffers grow with what a file really holds
//! and what the caller writes; backend (untrusted) slots are at most [`IO_SIZE`]
//! each, so a segment larger than that travels in several IOs.

use zeroize::Zeroizing;

use crate::error::{SpillError, SpillResult};

/// Largest IO (and so backend slot buffer) a stream makes: a long stream's
/// consecutive segments share IOs of up to this many bytes (the segment is the unit
/// of authentication, not of IO), and larger segments are split into IOs of it.
pub const IO_SIZE: usize = 1 << 20;

/// A stream coalesces once it is this long: shorter ones (most spill files are a
/// few KiB) keep segment-sized slots, so an idle pooled backend stays small.
pub const COALESCE_AFTER: u64 = 1 << 20;

/// Most backend buffer memory one stream may hold: `queue_depth × slot size`.
pub const MAX_STREAM_BUFFERS: usize = 256 << 20;

/// A trusted buffer starts this large (or the segment size, if smaller) and grows
/// geometrically as data arrives.
const INITIAL: usize = 1 << 20;

const PAGE: usize = 4096;

/// Direct IO needs block-aligned offsets and lengths: segment sizes that are whole pages.
pub const DIRECT_ALIGN: u64 = 4096;

/// The slot size a stream asks its backend for, for segments (or reads) of up to
/// `extent` bytes: whole pages, at most [`IO_SIZE`].
pub(crate) fn slot_len(extent: usize) -> usize {
    extent.max(1).div_ceil(PAGE).saturating_mul(PAGE).min(IO_SIZE)
}

/// Whether a long stream of `segment_size` segments, `queue_depth` IOs deep, moves
/// to [`IO_SIZE`] slots and coalesces: not for segments of an IO or more (nothing to
/// gather), nor when IO-sized buffers would exceed [`MAX_STREAM_BUFFERS`].
pub fn coalesces(segment_size: usize, queue_depth: usize) -> bool {
    slot_len(segment_size) < IO_SIZE && queue_depth.saturating_mul(IO_SIZE) <= MAX_STREAM_BUFFERS
}

/// Refuses a queue depth whose buffers would exceed [`MAX_STREAM_BUFFERS`].
pub(crate) fn check_buffers(depth: usize, slot: usize) -> SpillResult {
    let total = depth.saturating_mul(slot.div_ceil(PAGE) * PAGE);
    if total > MAX_STREAM_BUFFERS {
        return Err(SpillError::invalid(None, format!(
            "queue depth {depth} × {} KiB IO buffers is {} MiB per stream, more than the {} MiB limit: lower queue_depth",
            slot.div_ceil(1024),
            total >> 20,
            MAX_STREAM_BUFFERS >> 20
        )));
    }
    Ok(())
}

/// Trusted bytes that grow on demand and are wiped when dropped *and* when they
/// move: growing copies into a fresh allocation and wipes the old one, where
/// `Vec`'s own growth would leave plaintext behind in freed memory.
pub(crate) struct GrowBuf {
    buf: Zeroizing<Vec<u8>>,
    /// Never grows beyond this.
    max: usize,
}

impl GrowBuf {
    /// An empty buffer that may grow to `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self { buf: Zeroizing::new(Vec::new()), max }
    }

    /// A buffer of `min(max, 1 MiB)` zero bytes that may grow to `max`.
    pub(crate) fn with_initial(max: usize) -> Self {
        let mut b = Self::new(max);
        b.ensure(max.min(INITIAL));
        b
    }

    /// Makes the buffer at least `len` bytes long (up to its maximum), keeping its
    /// contents; new bytes are zero. Panics if `len` exceeds the maximum (a bug).
    pub(crate) fn ensure(&mut self, len: usize) {
        assert!(len <= self.max, "GrowBuf: {len} bytes requested, at most {} allowed", self.max);
        if len <= self.buf.len() {
            return;
        }
        let grown = len.max(self.buf.len().saturating_mul(2)).min(self.max);
        let mut fresh = Zeroizing::new(vec![0u8; grown]);
        fresh[..self.buf.len()].copy_from_slice(&self.buf);
        // The old allocation is wiped as `Zeroizing` drops it.
        self.buf = fresh;
    }

    /// Takes the bytes out (the buffer is left empty), e.g. to lend them.
    pub(crate) fn take(&mut self) -> Zeroizing<Vec<u8>> {
        std::mem::take(&mut self.buf)
    }

    /// Puts back what [`take`](Self::take) lent.
    pub(crate) fn put_back(&mut self, buf: Zeroizing<Vec<u8>>) {
        self.buf = buf;
    }
}

impl std::ops::Deref for GrowBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for GrowBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeping_contents_and_never_past_its_maximum() {
        let mut b = GrowBuf::with_initial(10 << 20);
        assert_eq!(b.len(), 1 << 20);
        b[..3].copy_from_slice(b"abc");
        b.ensure((1 << 20) + 1);
        assert_eq!(b.len(), 2 << 20, "doubles");
        assert_eq!(&b[..3], b"abc");
        b.ensure(9 << 20);
        assert_eq!(b.len(), 9 << 20);
        b.ensure(10 << 20);
        assert_eq!(b.len(), 10 << 20, "capped at its maximum");
        assert!(std::panic::catch_unwind(move || b.ensure((10 << 20) + 1)).is_err());
    }

    #[test]
    fn a_small_maximum_is_allocated_whole() {
        assert_eq!(GrowBuf::with_initial(300).len(), 300);
    }

    #[test]
    fn slot_sizes_are_pages_up_to_one_io() {
        assert_eq!(slot_len(1), 4096);
        assert_eq!(slot_len(65536), 65536);
        assert_eq!(slot_len(1 << 30), IO_SIZE);
        assert!(check_buffers(8, 65536).is_ok());
        assert!(check_buffers(256, IO_SIZE).is_ok());
        let e = check_buffers(1024, IO_SIZE).unwrap_err().to_string();
        assert!(e.contains("queue depth 1024") && e.contains("lower queue_depth"), "{e}");
    }
}
