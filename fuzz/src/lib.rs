//! What the exitless fuzz targets share: the fixed data key and contexts (those of
//! the test vectors in docs/FORMAT.md, so the committed seeds, which are the vectors,
//! open), the stream parameters of vectors 2, 3 and 5 for the segment target, and
//! the framing of inputs.
//!
//! Input framing (the seeds in `fuzz/seeds/<target>/` follow it):
//! - `header`: the bytes of a file's start.
//! - `segment`: `stream (1) ‖ index (1) ‖ flags (1) ‖ ciphertext ‖ tag`, see [`segment_index`].
//! - `stream`: `context (1) ‖ file`; the low two bits of the first byte pick [`CONTEXTS`].
//! - `completions`: a byte program, see `fuzz_targets/completions.rs`.
//! - `ffi_reader`: `context/backend (1) ‖ chunk (1) ‖ file`, see `fuzz_targets/ffi_reader.rs`.

use exitless_seal::{Algorithm, DataKey, Header, KeyId, StreamParams};

/// The data key of every test vector: bytes 0x00..=0x1f.
pub const KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = i as u8;
        i += 1;
    }
    k
};

/// The contexts of the test vectors: vectors 1 and 4 (empty), 2, 3 and 5.
pub const CONTEXTS: [&[u8]; 4] = [b"", b"app-7/shuffle-3/partition-12", b"spill", b"vector-5"];

/// The salt of every test vector: bytes 0x40..=0x5f.
pub const SALT: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = 0x40 + i as u8;
        i += 1;
    }
    s
};

/// The nonce prefix of every test vector.
pub const NONCE_PREFIX: [u8; 7] = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6];

/// The key envelope of vector 5 (a made-up `WrappedKey` of scheme 2).
pub const ENVELOPE_5: &str =
    "02333333333333333333333333333333330028c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7";

/// The data key as the crate's type.
pub fn data_key() -> DataKey {
    DataKey::from_slice(&KEY).expect("32 bytes")
}

/// The context an input's selector byte picks.
pub fn context_of(selector: u8) -> &'static [u8] {
    CONTEXTS[usize::from(selector & 3)]
}

/// One stream the segment target opens segments of: the parameters (with
/// [`SALT`] and [`NONCE_PREFIX`]) and context of a test vector.
pub struct VectorStream {
    /// Algorithm, segment size, key id, envelope.
    pub params: StreamParams,
    /// The context the vector was sealed with.
    pub context: &'static [u8],
}

impl VectorStream {
    /// The header these parameters produce (the vector's first `H` bytes).
    pub fn header(&self) -> Header {
        let p = &self.params;
        match &p.envelope {
            None => Header::new(p.algorithm, p.segment_size, p.key_id, SALT, NONCE_PREFIX),
            Some(e) => Header::with_envelope(p.algorithm, p.segment_size, p.key_id, SALT, NONCE_PREFIX, e),
        }
        .expect("valid vector parameters")
    }
}

/// Vectors 2 (AES-256-GCM, version 1), 3 (ChaCha20-Poly1305) and 5 (version 2).
pub fn vector_streams() -> [VectorStream; 3] {
    [
        VectorStream {
            params: StreamParams {
                algorithm: Algorithm::Aes256Gcm,
                segment_size: 256,
                key_id: KeyId([0x11; 16]),
                envelope: None,
            },
            context: CONTEXTS[1],
        },
        VectorStream {
            params: StreamParams {
                algorithm: Algorithm::ChaCha20Poly1305,
                segment_size: 256,
                key_id: KeyId([0x22; 16]),
                envelope: None,
            },
            context: CONTEXTS[2],
        },
        VectorStream {
            params: StreamParams {
                algorithm: Algorithm::Aes256Gcm,
                segment_size: 256,
                key_id: KeyId([0x33; 16]),
                envelope: Some(hex::decode(ENVELOPE_5).expect("hex")),
            },
            context: CONTEXTS[3],
        },
    ]
}

/// The segment index an input's index and flag bytes name: small indexes mostly,
/// and with flag bit 1 the indexes around the format's limit of 2^32 segments.
pub fn segment_index(index: u8, flags: u8) -> u64 {
    if flags & 2 == 0 {
        u64::from(index)
    } else {
        // 2^32 - 128 ..= 2^32 + 127: the last valid indexes and the first invalid ones.
        (1u64 << 32) - 128 + u64::from(index)
    }
}

/// Stream parameters that reproduce a parsed header (with its salt and nonce prefix).
pub fn params_of(header: &Header) -> StreamParams {
    StreamParams {
        algorithm: header.algorithm(),
        segment_size: header.segment_size(),
        key_id: header.key_id(),
        envelope: header.envelope().map(<[u8]>::to_vec),
    }
}
