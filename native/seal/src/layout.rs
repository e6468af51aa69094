//! Where segments live (docs/FORMAT.md, sections 4 and 5).
//!
//! The segment size `S` is the ciphertext slot size. The header takes the start of
//! slot 0, so segment `i ≥ 1` starts at `i·S` and direct IO stays block-aligned.
//! The header length `H` is 68 in version 1 and 72 + envelope length in version 2.

use crate::error::{Error, Result};
use crate::limits::{HEADER_LEN, MAX_HEADER_LEN, V2_FIXED_LEN};
pub use crate::limits::{MAX_SEGMENTS, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, TAG_LEN};

/// Segment geometry of a stream with a given segment size and header length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    segment_size: u32,
    header_len: u32,
}

/// Where the segments of one sealed file are, derived from its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of segments, at least 1.
    pub segments: u64,
    /// Ciphertext length (with tag) of the final segment.
    pub final_len: usize,
    /// Plaintext length of the whole stream.
    pub plaintext_len: u64,
}

impl Geometry {
    /// Index of the final segment.
    pub const fn final_index(&self) -> u64 {
        self.segments - 1
    }
}

impl Layout {
    /// A layout for segment size `S` and header length `H` ([`HEADER_LEN`] for
    /// version 1, [`crate::Header::len`] in general); fails when `S` is outside
    /// [256, 1 GiB], `H` is not a header length of any version, or segment 0 would
    /// hold no plaintext (`S < H + 17`).
    pub fn new(segment_size: u32, header_len: usize) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::invalid("segment size must be between 256 bytes and 1 GiB"));
        }
        if header_len != HEADER_LEN && !(V2_FIXED_LEN + 1..=MAX_HEADER_LEN).contains(&header_len) {
            return Err(Error::invalid("header length must be 68 or 73 to 1096 bytes"));
        }
        if (segment_size as usize) < header_len + TAG_LEN + 1 {
            return Err(Error::invalid("segment size too small for the header"));
        }
        Ok(Self { segment_size, header_len: header_len as u32 })
    }

    /// The ciphertext segment size `S`.
    pub const fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// The header length `H`: where segment 0's ciphertext starts.
    pub const fn header_len(&self) -> usize {
        self.header_len as usize
    }

    /// Plaintext bytes segment `index` holds when full: `P0` for segment 0, `P` after.
    pub const fn capacity(&self, index: u64) -> usize {
        let s = self.segment_size as usize;
        if index == 0 {
            s - self.header_len as usize - TAG_LEN
        } else {
            s - TAG_LEN
        }
    }

    /// File offset of segment `index`'s ciphertext.
    pub const fn offset(&self, index: u64) -> u64 {
        if index == 0 {
            self.header_len as u64
        } else {
            index * self.segment_size as u64
        }
    }

    /// Which segment holds plaintext offset `pos`, and where in that segment.
    pub const fn locate(&self, pos: u64) -> (u64, usize) {
        let p0 = self.capacity(0) as u64;
        if pos < p0 {
            (0, pos as usize)
        } else {
            let p = self.capacity(1) as u64;
            let rest = pos - p0;
            (1 + rest / p, (rest % p) as usize)
        }
    }

    /// Plaintext offset where segment `index` starts.
    pub const fn plaintext_start(&self, index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            self.capacity(0) as u64 + (index - 1) * self.capacity(1) as u64
        }
    }

    /// The geometry of a stream of `plaintext_len` bytes as a writer lays it out.
    pub fn for_plaintext(&self, plaintext_len: u64) -> Result<Geometry> {
        let p0 = self.capacity(0) as u64;
        let (segments, final_plain) = if plaintext_len <= p0 {
            (1, plaintext_len)
        } else {
            let p = self.capacity(1) as u64;
            let rest = plaintext_len - p0;
            // `rest.div_ceil(p)`, spelled out for Rust 1.66 (Occlum's toolchain).
            let k = rest / p + u64::from(rest % p != 0);
            (1 + k, rest - (k - 1) * p)
        };
        if segments > MAX_SEGMENTS {
            return Err(Error::invalid("stream too long: more than 2^32 segments"));
        }
        Ok(Geometry { segments, final_len: final_plain as usize + TAG_LEN, plaintext_len })
    }

    /// Sealed file length for a plaintext of `plaintext_len` bytes.
    pub fn sealed_len(&self, plaintext_len: u64) -> Result<u64> {
        let g = self.for_plaintext(plaintext_len)?;
        Ok(self.offset(g.final_index()) + g.final_len as u64)
    }

    /// The geometry of a sealed file of `file_len` bytes (FORMAT.md section 5).
    pub fn for_file(&self, file_len: u64) -> Result<Geometry> {
        let h = self.header_len as u64;
        if file_len < h {
            return Err(Error::integrity("truncated: the file ends inside the header"));
        }
        let s = self.segment_size as u64;
        let (segments, final_len) = if file_len <= s {
            (1, file_len - h)
        } else {
            let past_first = file_len - s;
            let n = 1 + past_first / s + u64::from(past_first % s != 0); // 1 + div_ceil
            (n, file_len - (n - 1) * s)
        };
        if final_len < TAG_LEN as u64 || (final_len == TAG_LEN as u64 && segments > 1) {
            return Err(
                Error::integrity("truncated: the final segment is incomplete").at_segment(segments - 1)
            );
        }
        if segments > MAX_SEGMENTS {
            return Err(Error::format("more than 2^32 segments"));
        }
        let final_len = final_len as usize;
        let plaintext_len = self.plaintext_start(segments - 1) + (final_len - TAG_LEN) as u64;
        Ok(Geometry { segments, final_len, plaintext_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_and_offsets() {
        let l = Layout::new(256, HEADER_LEN).unwrap();
        assert_eq!(l.capacity(0), 172);
        assert_eq!(l.capacity(1), 240);
        assert_eq!(l.offset(0), 68);
        assert_eq!(l.offset(3), 768);
        assert_eq!(l.locate(171), (0, 171));
        assert_eq!(l.locate(172), (1, 0));
        assert_eq!(l.locate(172 + 240 + 5), (2, 5));
        assert_eq!(l.plaintext_start(2), 412);
    }

    #[test]
    fn writer_and_reader_geometry_agree() {
        let l = Layout::new(256, HEADER_LEN).unwrap();
        for len in 0..2000u64 {
            let w = l.for_plaintext(len).unwrap();
            let file_len = l.sealed_len(len).unwrap();
            let r = l.for_file(file_len).unwrap();
            assert_eq!(w, r, "plaintext length {len}");
            assert_eq!(r.plaintext_len, len);
        }
    }

    #[test]
    fn empty_stream_is_84_bytes() {
        let l = Layout::new(65536, HEADER_LEN).unwrap();
        assert_eq!(l.sealed_len(0).unwrap(), 84);
    }

    #[test]
    fn short_final_segments_are_truncation() {
        let l = Layout::new(256, HEADER_LEN).unwrap();
        for file_len in [0u64, 67, 68, 83, 256 + 15, 256 + 16, 512 + 1] {
            let e = l.for_file(file_len).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Integrity, "file length {file_len}");
        }
        assert!(l.for_file(84).is_ok());
        assert!(l.for_file(256 + 17).is_ok());
    }

    #[test]
    fn version_2_header_lengths() {
        let l = Layout::new(256, 72 + 40).unwrap();
        assert_eq!(l.capacity(0), 256 - 112 - 16);
        assert_eq!(l.offset(0), 112);
        assert_eq!(l.offset(1), 256);
        assert_eq!(l.sealed_len(0).unwrap(), 128);
        for len in 0..1500u64 {
            let file_len = l.sealed_len(len).unwrap();
            assert_eq!(
                l.for_file(file_len).unwrap(),
                l.for_plaintext(len).unwrap(),
                "plaintext length {len}"
            );
        }
        assert_eq!(l.for_file(127).unwrap_err().kind(), crate::ErrorKind::Integrity);
        assert!(Layout::new(256, 72 + 167).is_ok());
        for (s, h) in [(256, 72 + 168), (4096, 72), (4096, 70), (4096, MAX_HEADER_LEN + 1)] {
            assert_eq!(Layout::new(s, h).unwrap_err().kind(), crate::ErrorKind::InvalidArgument, "{s} {h}");
        }
    }
}
