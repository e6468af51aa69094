//! The format's sizes, which the header and the layout both speak of (docs/FORMAT.md).
//! [`crate::header`] and [`crate::layout`] re-export theirs.

/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Smallest segment size the format allows.
pub const MIN_SEGMENT_SIZE: u32 = 256;
/// Largest segment size the format allows (1 GiB).
pub const MAX_SEGMENT_SIZE: u32 = 1 << 30;
/// Most segments a stream may have (the index is a u32 in the nonce).
pub const MAX_SEGMENTS: u64 = 1 << 32;

/// Header length of format version 1. Positions in a stream come from
/// [`crate::Header::len`] (or [`crate::Layout`]), never from this constant.
pub const HEADER_LEN: usize = 68;
/// Length of the fixed part of a version-2 header (the envelope follows it).
pub const V2_FIXED_LEN: usize = 72;
/// Largest key envelope a version-2 header carries.
pub const MAX_ENVELOPE_LEN: usize = 1024;
/// Largest header of any version: 72 + 1024 bytes.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + MAX_ENVELOPE_LEN;
