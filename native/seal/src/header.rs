//! The header: 68 bytes in format version 1 (docs/FORMAT.md, section 2), 72 bytes
//! plus a key envelope in version 2 ("Version 2: key envelope").

use alloc::vec::Vec;
use core::fmt;

use crate::error::{Error, Result};
pub use crate::limits::{HEADER_LEN, MAX_ENVELOPE_LEN, MAX_HEADER_LEN, V2_FIXED_LEN};
use crate::limits::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, TAG_LEN};

/// Salt length.
pub const SALT_LEN: usize = 32;
/// Nonce prefix length.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Key id length.
pub const KEY_ID_LEN: usize = 16;

/// The magic bytes, ASCII `EXLS`.
pub const MAGIC: [u8; 4] = *b"EXLS";
/// Format version 1 (no envelope).
pub const VERSION: u8 = 1;
/// Format version 2: version 1 plus a key envelope in the header.
pub const VERSION_2: u8 = 2;

const OFF_VERSION: usize = 4;
const OFF_AEAD: usize = 5;
const OFF_HEADER_LEN: usize = 6;
const OFF_SEGMENT_SIZE: usize = 8;
const OFF_KEY_ID: usize = 12;
const OFF_SALT: usize = 28;
const OFF_PREFIX: usize = 60;
const OFF_RESERVED: usize = 67;
const OFF_ENVELOPE_LEN: usize = 68;
const OFF_RESERVED_2: usize = 70;

/// The segment AEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    /// AES-256-GCM, id 1 (the default).
    Aes256Gcm = 1,
    /// ChaCha20-Poly1305 (RFC 8439), id 2.
    ChaCha20Poly1305 = 2,
}

impl Algorithm {
    /// The id stored in the header.
    pub const fn id(self) -> u8 {
        self as u8
    }
    /// The algorithm for a header id.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }
    /// The name used by the CLI and Python API.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
    /// The algorithm for a name used by the CLI and Python API.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(Self::Aes256Gcm),
            "chacha20-poly1305" => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }
}

/// The 16-byte key id stored in the header: which data key sealed the stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The all-zero id, meaning "not recorded".
    pub const NONE: Self = Self([0; KEY_ID_LEN]);
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A parsed, valid header (version 1 or 2). Holds the exact bytes, which enter the
/// key derivation.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    bytes: Vec<u8>,
}

impl Header {
    /// Builds a version-1 header. `segment_size` must be within the format's bounds.
    pub fn new(
        algorithm: Algorithm,
        segment_size: u32,
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        Self::build(algorithm, segment_size, key_id, salt, nonce_prefix, None)
    }

    /// Builds a version-2 header carrying `envelope` (1 to 1024 bytes, opaque: the
    /// KMS's wrapped data key). `key_id` should be the id of the KMS key that wrapped
    /// it. The segment size must leave room for at least one plaintext byte in
    /// segment 0: `S ≥ 72 + envelope.len() + 16 + 1`.
    pub fn with_envelope(
        algorithm: Algorithm,
        segment_size: u32,
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        envelope: &[u8],
    ) -> Result<Self> {
        Self::build(algorithm, segment_size, key_id, salt, nonce_prefix, Some(envelope))
    }

    fn build(
        algorithm: Algorithm,
        segment_size: u32,
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        envelope: Option<&[u8]>,
    ) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::invalid("segment size must be between 256 bytes and 1 GiB"));
        }
        let len = match envelope {
            None => HEADER_LEN,
            Some(e) if e.is_empty() || e.len() > MAX_ENVELOPE_LEN => {
                return Err(Error::invalid("a key envelope must be 1 to 1024 bytes"));
            }
            Some(e) => V2_FIXED_LEN + e.len(),
        };
        if (segment_size as usize) < len + TAG_LEN + 1 {
            return Err(Error::invalid(
                "segment size too small for the header: segment 0 must hold at least one plaintext byte",
            ));
        }
        let mut bytes = alloc::vec![0u8; len];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[OFF_VERSION] = if envelope.is_some() { VERSION_2 } else { VERSION };
        bytes[OFF_AEAD] = algorithm.id();
        bytes[OFF_HEADER_LEN..OFF_SEGMENT_SIZE].copy_from_slice(&(len as u16).to_be_bytes());
        bytes[OFF_SEGMENT_SIZE..OFF_KEY_ID].copy_from_slice(&segment_size.to_be_bytes());
        bytes[OFF_KEY_ID..OFF_SALT].copy_from_slice(&key_id.0);
        bytes[OFF_SALT..OFF_PREFIX].copy_from_slice(&salt);
        bytes[OFF_PREFIX..OFF_RESERVED].copy_from_slice(&nonce_prefix);
        if let Some(e) = envelope {
            bytes[OFF_ENVELOPE_LEN..OFF_RESERVED_2].copy_from_slice(&(e.len() as u16).to_be_bytes());
            bytes[V2_FIXED_LEN..].copy_from_slice(e);
        }
        Ok(Self { bytes })
    }

    /// How many bytes a reader must have to parse the header at the start of `data`
    /// (the first up to [`V2_FIXED_LEN`] bytes of a file): the declared header length
    /// of a version-2 header, capped at [`MAX_HEADER_LEN`], else `data.len()`.
    /// Never fails: [`Header::parse`] judges the bytes.
    pub fn declared_len(data: &[u8]) -> usize {
        if data.len() >= OFF_SEGMENT_SIZE && data[..4] == MAGIC && data[OFF_VERSION] == VERSION_2 {
            let h = u16::from_be_bytes([data[OFF_HEADER_LEN], data[OFF_HEADER_LEN + 1]]) as usize;
            h.clamp(V2_FIXED_LEN, MAX_HEADER_LEN)
        } else {
            data.len()
        }
    }

    /// Parses the start of a file, applying FORMAT.md's rules in order. `data` may be
    /// the whole file or just its first bytes (at least the header's length); fewer
    /// bytes than the header is a truncated header when they look like the start of one.
    pub fn parse(data: &[u8]) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::integrity("truncated: the file is empty"));
        }
        if data.len() < HEADER_LEN {
            let n = data.len().min(MAGIC.len());
            return Err(if data[..n] == MAGIC[..n] {
                Error::integrity("truncated: the file ends inside the header")
            } else {
                Error::format("not an exitless sealed stream (bad magic)")
            });
        }
        if data[..4] != MAGIC {
            return Err(Error::format("not an exitless sealed stream (bad magic)"));
        }
        match data[OFF_VERSION] {
            VERSION => Self::parse_v1(data),
            VERSION_2 => Self::parse_v2(data),
            _ => Err(Error::format("unsupported format version (this reader knows versions 1 and 2)")),
        }
    }

    fn parse_v1(data: &[u8]) -> Result<Self> {
        if u16::from_be_bytes([data[OFF_HEADER_LEN], data[OFF_HEADER_LEN + 1]]) as usize != HEADER_LEN {
            return Err(Error::format("bad header length for format version 1"));
        }
        Self::check_common(data)?;
        Ok(Self { bytes: data[..HEADER_LEN].to_vec() })
    }

    fn parse_v2(data: &[u8]) -> Result<Self> {
        if data.len() < V2_FIXED_LEN {
            return Err(Error::integrity("truncated: the file ends inside the header"));
        }
        let envelope_len = u16::from_be_bytes([data[OFF_ENVELOPE_LEN], data[OFF_ENVELOPE_LEN + 1]]) as usize;
        if !(1..=MAX_ENVELOPE_LEN).contains(&envelope_len) {
            return Err(Error::format(
                "format version 2: key envelope length out of range (1 to 1024 bytes)",
            ));
        }
        let len = V2_FIXED_LEN + envelope_len;
        if u16::from_be_bytes([data[OFF_HEADER_LEN], data[OFF_HEADER_LEN + 1]]) as usize != len {
            return Err(Error::format(
                "bad header length for format version 2 (must be 72 + envelope length)",
            ));
        }
        Self::check_common(data)?;
        if data[OFF_RESERVED_2..V2_FIXED_LEN] != [0, 0] {
            return Err(Error::format("format version 2: reserved header bytes 70-71 are not zero"));
        }
        if (read_u32(&data[OFF_SEGMENT_SIZE..]) as usize) < len + TAG_LEN + 1 {
            return Err(Error::format(
                "format version 2: segment size too small for the header and its key envelope",
            ));
        }
        if data.len() < len {
            return Err(Error::integrity("truncated: the file ends inside the header's key envelope"));
        }
        Ok(Self { bytes: data[..len].to_vec() })
    }

    /// Rules shared by both versions: AEAD id, segment size, reserved byte 67.
    fn check_common(data: &[u8]) -> Result<()> {
        if Algorithm::from_id(data[OFF_AEAD]).is_none() {
            return Err(Error::format("unknown AEAD id"));
        }
        let segment_size = read_u32(&data[OFF_SEGMENT_SIZE..]);
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::format("segment size out of range"));
        }
        if data[OFF_RESERVED] != 0 {
            return Err(Error::format("reserved header byte is not zero"));
        }
        Ok(())
    }

    /// The header's length `H` in bytes: 68 (version 1) or 72 + envelope length.
    #[allow(clippy::len_without_is_empty)] // a header is never empty
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The key envelope (version 2): the wrapped data key, opaque to the format.
    /// `None` for version 1. Unauthenticated until a segment has opened.
    pub fn envelope(&self) -> Option<&[u8]> {
        (self.version() == VERSION_2).then(|| &self.bytes[V2_FIXED_LEN..])
    }

    /// The exact header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The segment AEAD.
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::from_id(self.bytes[OFF_AEAD]).expect("checked when the header was built")
    }
    /// The ciphertext segment size `S`.
    pub fn segment_size(&self) -> u32 {
        read_u32(&self.bytes[OFF_SEGMENT_SIZE..])
    }
    /// The format version.
    pub fn version(&self) -> u8 {
        self.bytes[OFF_VERSION]
    }
    /// Which data key sealed this stream (all zero if not recorded).
    pub fn key_id(&self) -> KeyId {
        KeyId(self.bytes[OFF_KEY_ID..OFF_SALT].try_into().expect("fixed range"))
    }
    /// The per-stream HKDF salt.
    pub fn salt(&self) -> &[u8] {
        &self.bytes[OFF_SALT..OFF_PREFIX]
    }
    /// The per-stream nonce prefix.
    pub fn nonce_prefix(&self) -> [u8; NONCE_PREFIX_LEN] {
        self.bytes[OFF_PREFIX..OFF_RESERVED].try_into().expect("fixed range")
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("version", &self.version())
            .field("algorithm", &self.algorithm())
            .field("segment_size", &self.segment_size())
            .field("key_id", &self.key_id())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn sample() -> Header {
        Header::new(Algorithm::Aes256Gcm, 4096, KeyId([9; 16]), [1; 32], [2; 7]).unwrap()
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let p = Header::parse(h.as_bytes()).unwrap();
        assert_eq!(p, h);
        assert_eq!(p.segment_size(), 4096);
        assert_eq!(p.key_id(), KeyId([9; 16]));
        assert_eq!(p.salt(), &[1; 32]);
        assert_eq!(p.nonce_prefix(), [2; 7]);
        assert_eq!(p.algorithm(), Algorithm::Aes256Gcm);
    }

    #[test]
    fn rules_apply_in_order() {
        let good: [u8; HEADER_LEN] = sample().as_bytes().try_into().unwrap();
        let kind = |b: &[u8]| Header::parse(b).unwrap_err().kind();
        assert_eq!(kind(&[]), ErrorKind::Integrity);
        assert_eq!(kind(&good[..3]), ErrorKind::Integrity);
        assert_eq!(kind(&good[..67]), ErrorKind::Integrity);
        assert_eq!(kind(b"PK\x03\x04"), ErrorKind::Format);
        // Version 2 needs 72 bytes: 68 bytes that say version 2 are a truncated header.
        let mut v2 = good;
        v2[4] = 2;
        assert_eq!(kind(&v2), ErrorKind::Integrity);
        for (offset, value) in [(0, b'X'), (4, 3), (4, 0), (5, 3), (5, 0), (6, 1), (67, 1)] {
            let mut b = good;
            b[offset] = value;
            assert_eq!(kind(&b), ErrorKind::Format, "offset {offset}");
        }
        for size in [0u32, 255, (1 << 30) + 1] {
            let mut b = good;
            b[8..12].copy_from_slice(&size.to_be_bytes());
            assert_eq!(kind(&b), ErrorKind::Format, "segment size {size}");
        }
    }

    fn sample_v2(envelope: &[u8]) -> Header {
        Header::with_envelope(Algorithm::ChaCha20Poly1305, 4096, KeyId([7; 16]), [1; 32], [2; 7], envelope)
            .unwrap()
    }

    #[test]
    fn version_2_round_trips() {
        let h = sample_v2(b"wrapped key");
        assert_eq!(h.len(), 72 + 11);
        assert_eq!(h.version(), 2);
        assert_eq!(&h.as_bytes()[6..8], &[0, 83]);
        assert_eq!(&h.as_bytes()[68..72], &[0, 11, 0, 0]);
        let mut file = h.as_bytes().to_vec();
        file.extend_from_slice(&[0xee; 100]); // segment 0 follows
        assert_eq!(Header::declared_len(&file[..72]), 83);
        let p = Header::parse(&file).unwrap();
        assert_eq!(p, h);
        assert_eq!(p.envelope(), Some(&b"wrapped key"[..]));
        assert_eq!(p.key_id(), KeyId([7; 16]));
        assert_eq!(p.segment_size(), 4096);
        assert_eq!(sample().envelope(), None);
        assert_eq!(sample().len(), HEADER_LEN);
        assert_eq!(Header::declared_len(&file[..40]), 83);
        assert_eq!(Header::declared_len(&file[..7]), 7);
        assert_eq!(Header::declared_len(sample().as_bytes()), 68);
        let max = sample_v2(&[5; MAX_ENVELOPE_LEN]);
        assert_eq!(max.len(), MAX_HEADER_LEN);
        assert_eq!(Header::parse(max.as_bytes()).unwrap(), max);
    }

    #[test]
    fn version_2_rules_apply_in_order() {
        let good = sample_v2(&[0xab; 20]).as_bytes().to_vec();
        let kind = |b: &[u8]| Header::parse(b).unwrap_err().kind();
        let with = |edits: &[(usize, u8)]| {
            let mut b = good.clone();
            for &(o, v) in edits {
                b[o] = v;
            }
            b
        };
        // Truncated: inside the fixed part, or inside the envelope.
        for cut in [1, 4, 5, 67, 68, 70, 71, 72, 73, good.len() - 1] {
            assert_eq!(kind(&good[..cut]), ErrorKind::Integrity, "cut {cut}");
        }
        // Each Format rule, with the other fields valid.
        let format = [
            with(&[(0, b'X')]),                         // magic
            with(&[(4, 3)]),                            // version
            with(&[(68, 0), (69, 0)]),                  // L = 0
            with(&[(68, 4), (69, 1), (6, 4), (7, 73)]), // L = 1025, H = 72 + L
            with(&[(69, 21)]),                          // H != 72 + L
            with(&[(7, 93)]),                           // H != 72 + L
            with(&[(5, 0)]),                            // AEAD id
            with(&[(10, 0), (11, 0)]),                  // S = 0
            with(&[(67, 1)]),                           // reserved
            with(&[(70, 1)]),                           // reserved
            with(&[(71, 0x80)]),                        // reserved
        ];
        for (i, b) in format.iter().enumerate() {
            assert_eq!(kind(b), ErrorKind::Format, "case {i}");
        }
        // A declared header longer than the data at hand is truncation once the fixed part is valid.
        let long = with(&[(68, 1), (69, 0), (6, 1), (7, 72)]);
        assert_eq!(kind(&long), ErrorKind::Integrity);
        // Segment size must leave one plaintext byte in segment 0: S >= H + 17.
        let env = [1u8; 1024];
        let tight =
            Header::with_envelope(Algorithm::Aes256Gcm, 1113, KeyId::NONE, [0; 32], [0; 7], &env).unwrap();
        let mut b = tight.as_bytes().to_vec();
        assert!(Header::parse(&b).is_ok());
        b[8..12].copy_from_slice(&1112u32.to_be_bytes());
        assert_eq!(kind(&b), ErrorKind::Format);
        b.truncate(200); // the size rule is checked before the envelope is needed
        assert_eq!(kind(&b), ErrorKind::Format);
    }

    #[test]
    fn rejects_bad_envelopes_when_building() {
        for (s, len) in [(4096, 0), (4096, MAX_ENVELOPE_LEN + 1), (256, 256 - 72 - 16)] {
            let e = Header::with_envelope(
                Algorithm::Aes256Gcm,
                s,
                KeyId::NONE,
                [0; 32],
                [0; 7],
                &[1; 2000][..len],
            );
            assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidArgument, "{s} {len}");
        }
        assert!(
            Header::with_envelope(Algorithm::Aes256Gcm, 256, KeyId::NONE, [0; 32], [0; 7], &[1; 167]).is_ok()
        );
    }

    #[test]
    fn rejects_bad_segment_size_when_building() {
        let e = Header::new(Algorithm::Aes256Gcm, 100, KeyId::NONE, [0; 32], [0; 7]);
        assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn key_id_prints_as_hex() {
        extern crate alloc;
        use alloc::string::ToString;
        assert_eq!(KeyId([0xab; 16]).to_string(), "ab".repeat(16));
    }
}
