//! Per-mount keys and the stream context.
//!
//! A mount's data key is HKDF-SHA256 of an input key (the 128-bit SGX sealing key,
//! or a KMS key the enclave received after remote attestation) with a fixed salt
//! and an `info` naming the key source and the mount target, so two mounts, or
//! the two key sources, never share a key. Each file then gets its own stream key
//! from that data key, its random salt and header (docs/FORMAT.md, section 3).

use alloc::vec::Vec;

use exitless_seal::DataKey;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::error::Error;
use crate::options::KeySource;

/// HKDF salt of every mount key.
pub const MOUNT_KEY_SALT: &[u8] = b"exitless sealedfs mount key v1";
/// Prefix of the stream context of every file in a mount.
pub const CONTEXT_PREFIX: &[u8] = b"exitless sealedfs v1\0";
/// Prefix hashed into the SGX key request's `key_id`.
pub const KEY_ID_PREFIX: &[u8] = b"exitless sealedfs key id v1\0";

/// The mount's data key from `input_key` (sealing key or KMS key bytes).
pub fn derive_mount_key(input_key: &[u8], source: &KeySource, target: &str) -> DataKey {
    let hk = Hkdf::<Sha256>::new(Some(MOUNT_KEY_SALT), input_key);
    let mut okm = [0u8; 32];
    let info: [&[u8]; 3] = [source.name().as_bytes(), b"\0", target.as_bytes()];
    hk.expand_multi_info(&info, &mut okm).expect("32 bytes is a valid HKDF-SHA256 output length");
    let key = DataKey::from_array(okm);
    okm.zeroize();
    key
}

/// The `key_id` of the SGX seal-key request for the mount at `target`: the same
/// enclave (MRENCLAVE policy) on the same CPU gets the same key for the same target,
/// with nothing stored on the host.
pub fn sealing_key_id(target: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(KEY_ID_PREFIX);
    h.update(target.as_bytes());
    h.finalize().into()
}

/// The stream context of every file in the mount at `target`: a file sealed in one
/// mount does not open in another. It does not name the file, since files are
/// renamed (Spark commits its shuffle files by renaming them).
pub fn stream_context(target: &str) -> Vec<u8> {
    let mut c = Vec::with_capacity(CONTEXT_PREFIX.len() + target.len());
    c.extend_from_slice(CONTEXT_PREFIX);
    c.extend_from_slice(target.as_bytes());
    c
}

/// Overwrites key material with zeros: volatile writes the optimizer cannot drop as
/// dead stores (a plain loop over a buffer that is never read again can vanish). For
/// what the LibOS holds outside [`DataKey`]: an SGX seal key, a key file's bytes.
pub fn wipe(secret: &mut [u8]) {
    secret.zeroize();
}

/// A KMS key file's 32 key bytes: either exactly 32 raw bytes, or 64 hex digits
/// (surrounding whitespace ignored).
pub fn parse_key_file(bytes: &[u8]) -> Result<[u8; 32], Error> {
    if bytes.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(bytes);
        return Ok(k);
    }
    let text = trim_ascii(bytes);
    if text.len() != 64 {
        return Err(Error::Invalid("a KMS key file holds 32 raw bytes or 64 hex digits"));
    }
    let mut k = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]);
        let lo = hex_digit(pair[1]);
        match (hi, lo) {
            (Some(hi), Some(lo)) => k[i] = (hi << 4) | lo,
            _ => {
                k.zeroize();
                return Err(Error::Invalid("a KMS key file holds 32 raw bytes or 64 hex digits"));
            }
        }
    }
    Ok(k)
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_keys_differ_by_source_and_target() {
        let ikm = [7u8; 16];
        let a = derive_mount_key(&ikm, &KeySource::Sealing, "/spill");
        let b = derive_mount_key(&ikm, &KeySource::Sealing, "/spill2");
        let c = derive_mount_key(&ikm, &KeySource::Kms { path: "/k".into() }, "/spill");
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert_eq!(a.expose_secret(), derive_mount_key(&ikm, &KeySource::Sealing, "/spill").expose_secret());
    }

    #[test]
    fn wipe_zeroes_every_byte() {
        let mut seal_key = [0xA5u8; 16];
        let mut file = b"0001020304050607".to_vec();
        wipe(&mut seal_key);
        wipe(&mut file);
        assert_eq!(seal_key, [0u8; 16]);
        assert!(file.iter().all(|&b| b == 0) && file.len() == 16);
    }

    #[test]
    fn key_files() {
        let hex = b"  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n";
        let k = parse_key_file(hex).unwrap();
        assert_eq!(k[0x1f], 0x1f);
        assert_eq!(parse_key_file(&[9u8; 32]).unwrap(), [9u8; 32]);
        assert!(parse_key_file(b"00").is_err());
        assert!(parse_key_file(&[b'g'; 64]).is_err());
    }

    #[test]
    fn key_ids_and_contexts_name_the_target() {
        assert_ne!(sealing_key_id("/a"), sealing_key_id("/b"));
        assert_eq!(stream_context("/spill"), b"exitless sealedfs v1\0/spill");
    }
}
