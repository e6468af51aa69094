//! The 68-byte version-1 header (docs/FORMAT.md, section 2).

use core::fmt;

use crate::error::{Error, Result};
use crate::layout::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};

/// Header length of format version 1.
pub const HEADER_LEN: usize = 68;
/// Salt length.
pub const SALT_LEN: usize = 32;
/// Nonce prefix length.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Key id length.
pub const KEY_ID_LEN: usize = 16;

/// The magic bytes, ASCII `EXLS`.
pub const MAGIC: [u8; 4] = *b"EXLS";
/// The only version this crate writes and reads.
pub const VERSION: u8 = 1;

const OFF_VERSION: usize = 4;
const OFF_AEAD: usize = 5;
const OFF_HEADER_LEN: usize = 6;
const OFF_SEGMENT_SIZE: usize = 8;
const OFF_KEY_ID: usize = 12;
const OFF_SALT: usize = 28;
const OFF_PREFIX: usize = 60;
const OFF_RESERVED: usize = 67;

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

/// A parsed, valid version-1 header. Holds the exact bytes, which enter the key derivation.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; HEADER_LEN],
}

impl Header {
    /// Builds a header. `segment_size` must be within the format's bounds.
    pub fn new(
        algorithm: Algorithm,
        segment_size: u32,
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::invalid("segment size must be between 256 bytes and 1 GiB"));
        }
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[OFF_VERSION] = VERSION;
        bytes[OFF_AEAD] = algorithm.id();
        bytes[OFF_HEADER_LEN..OFF_SEGMENT_SIZE].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        bytes[OFF_SEGMENT_SIZE..OFF_KEY_ID].copy_from_slice(&segment_size.to_be_bytes());
        bytes[OFF_KEY_ID..OFF_SALT].copy_from_slice(&key_id.0);
        bytes[OFF_SALT..OFF_PREFIX].copy_from_slice(&salt);
        bytes[OFF_PREFIX..OFF_RESERVED].copy_from_slice(&nonce_prefix);
        Ok(Self { bytes })
    }

    /// Parses the start of a file, applying FORMAT.md's rules in order. `data` may be
    /// the whole file or just its first bytes; fewer than 68 bytes is a truncated header
    /// when they look like the start of one.
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
        if data[OFF_VERSION] != VERSION {
            return Err(Error::format("unsupported format version (this reader knows version 1)"));
        }
        if u16::from_be_bytes([data[OFF_HEADER_LEN], data[OFF_HEADER_LEN + 1]]) as usize != HEADER_LEN {
            return Err(Error::format("bad header length for format version 1"));
        }
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
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&data[..HEADER_LEN]);
        Ok(Self { bytes })
    }

    /// The exact header bytes.
    pub const fn as_bytes(&self) -> &[u8; HEADER_LEN] {
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
    pub const fn version(&self) -> u8 {
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
        let good = *sample().as_bytes();
        let kind = |b: &[u8]| Header::parse(b).unwrap_err().kind();
        assert_eq!(kind(&[]), ErrorKind::Integrity);
        assert_eq!(kind(&good[..3]), ErrorKind::Integrity);
        assert_eq!(kind(&good[..67]), ErrorKind::Integrity);
        assert_eq!(kind(b"PK\x03\x04"), ErrorKind::Format);
        for (offset, value) in [(0, b'X'), (4, 2), (5, 3), (5, 0), (6, 1), (67, 1)] {
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
