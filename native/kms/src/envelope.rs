//! [`WrappedKey`]: a data key wrapped under a primary key, and its byte layout (the
//! envelope a version-2 sealed file carries; docs/KMS.md, "WrappedKey byte layout",
//! docs/FORMAT.md section 10.1), as Python's `exitless.kms.WrappedKey`:
//!
//! ```text
//! scheme (1) ‖ primary key id (16) ‖ BE16(len(wrapped)) ‖ wrapped (60 for scheme 1, 40 for scheme 2)
//! ```

use crate::error::{KmsError, Result};
use crate::KEY_LEN;

/// Length of a primary key id.
pub const KEY_ID_LEN: usize = 16;
/// Scheme 1: AES-256-GCM under a local keyring's primary key (`LocalKms`).
pub const SCHEME_LOCAL_AES_GCM: u8 = 1;
/// Scheme 2: RFC 3394 AES key wrap (`CKM_AES_KEY_WRAP`) in a PKCS#11 token (`Pkcs11Kms`).
pub const SCHEME_PKCS11_AES_KEY_WRAP: u8 = 2;
/// The first 16 bytes of scheme 1's associated data.
pub const WRAP_AAD_PREFIX: &[u8; 16] = b"exitless wrap v1";

/// Scheme 1's nonce length.
pub(crate) const GCM_NONCE_LEN: usize = 12;
/// Scheme 1's tag length.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// scheme, primary key id, BE16 length.
const HEADER_LEN: usize = 1 + KEY_ID_LEN + 2;

/// The exact length of the `wrapped` field of a 32-byte data key under `scheme`.
pub(crate) fn wrapped_len(scheme: u8) -> Option<usize> {
    match scheme {
        SCHEME_LOCAL_AES_GCM => Some(GCM_NONCE_LEN + KEY_LEN + GCM_TAG_LEN), // 60
        SCHEME_PKCS11_AES_KEY_WRAP => Some(KEY_LEN + 8), // 40: RFC 3394 adds one 64-bit block
        _ => None,
    }
}

/// Python's `_SCHEME_NAMES`: how messages name a scheme.
pub(crate) fn scheme_name(scheme: u8) -> String {
    match scheme {
        SCHEME_LOCAL_AES_GCM => "1 (local AES-256-GCM)".into(),
        SCHEME_PKCS11_AES_KEY_WRAP => "2 (PKCS#11 AES key wrap, RFC 3394)".into(),
        other => other.to_string(),
    }
}

fn unknown_scheme(scheme: u8) -> KmsError {
    KmsError::WrappedKeyFormat(format!("unknown wrapped key scheme {scheme} (known: [1, 2])"))
}

/// A data key encrypted under a primary key. Not secret: it is what sealed files
/// carry in their header.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    scheme: u8,
    primary_key_id: [u8; KEY_ID_LEN],
    wrapped: Vec<u8>,
}

impl WrappedKey {
    /// A wrapped key from its parts; [`KmsError::WrappedKeyFormat`] for an unknown
    /// scheme or a `wrapped` of the wrong length (Python's constructor checks).
    pub fn new(scheme: u8, primary_key_id: [u8; KEY_ID_LEN], wrapped: Vec<u8>) -> Result<Self> {
        let n = wrapped_len(scheme).ok_or_else(|| unknown_scheme(scheme))?;
        if wrapped.len() != n {
            return Err(KmsError::WrappedKeyFormat(format!(
                "scheme {scheme} wraps a {KEY_LEN}-byte data key into exactly {n} bytes, got {}",
                wrapped.len()
            )));
        }
        Ok(Self { scheme, primary_key_id, wrapped })
    }

    /// Parses a wrapped key at the start of `data`; returns it and the number of
    /// bytes it occupied (trailing bytes are allowed): Python's `from_prefix`.
    pub fn from_prefix(data: &[u8]) -> Result<(Self, usize)> {
        if data.len() < HEADER_LEN {
            return Err(KmsError::WrappedKeyFormat(format!(
                "a wrapped key is at least {HEADER_LEN} bytes (scheme, key id, length), got {}",
                data.len()
            )));
        }
        let scheme = data[0];
        let n_expected = wrapped_len(scheme).ok_or_else(|| unknown_scheme(scheme))?;
        let n = usize::from(u16::from_be_bytes([data[17], data[18]]));
        if n != n_expected {
            return Err(KmsError::WrappedKeyFormat(format!(
                "scheme {scheme} needs a {n_expected}-byte wrapped key, the length field says {n}"
            )));
        }
        let end = HEADER_LEN + n;
        if data.len() < end {
            return Err(KmsError::WrappedKeyFormat(format!(
                "wrapped key truncated: {end} bytes expected, {} present",
                data.len()
            )));
        }
        let mut primary_key_id = [0u8; KEY_ID_LEN];
        primary_key_id.copy_from_slice(&data[1..17]);
        Ok((Self::new(scheme, primary_key_id, data[HEADER_LEN..end].to_vec())?, end))
    }

    /// Parses exactly one wrapped key (the whole of `data`): Python's `from_bytes`.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let (wk, end) = Self::from_prefix(data)?;
        if end != data.len() {
            return Err(KmsError::WrappedKeyFormat(format!(
                "{} unexpected bytes after the wrapped key ({end} bytes)",
                data.len() - end
            )));
        }
        Ok(wk)
    }

    /// The serialized form (Python's `to_bytes`): what a sealed header stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.wrapped.len());
        out.push(self.scheme);
        out.extend_from_slice(&self.primary_key_id);
        let n = u16::try_from(self.wrapped.len()).expect("60 or 40 bytes");
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// 1 ([`SCHEME_LOCAL_AES_GCM`]) or 2 ([`SCHEME_PKCS11_AES_KEY_WRAP`]).
    pub fn scheme(&self) -> u8 {
        self.scheme
    }

    /// The id of the primary key that wrapped the data key.
    pub fn primary_key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.primary_key_id
    }

    /// The wrapped data key (60 or 40 bytes).
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }

    /// `UnwrapError` unless this key uses `scheme`, the one the KMS at `uri` handles
    /// (Python's `_wrapped_for`).
    pub(crate) fn check_scheme(&self, scheme: u8, uri: &str) -> Result<()> {
        if self.scheme == scheme {
            return Ok(());
        }
        Err(KmsError::Unwrap(format!(
            "data key under primary key {} uses scheme {}, which {uri} cannot unwrap (it handles scheme {})",
            hex(&self.primary_key_id),
            scheme_name(self.scheme),
            scheme_name(scheme)
        )))
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WrappedKey(scheme={}, primary_key_id={}, wrapped={} bytes)",
            scheme_name(self.scheme),
            hex(&self.primary_key_id),
            self.wrapped.len()
        )
    }
}

/// Lower-case hex, as Python's `bytes.hex()`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(scheme: u8) -> Vec<u8> {
        let n = wrapped_len(scheme).unwrap();
        let wk = WrappedKey::new(scheme, [7; 16], (0..n as u8).collect()).unwrap();
        wk.to_bytes()
    }

    fn format_error(data: &[u8]) -> String {
        match WrappedKey::from_bytes(data) {
            Err(KmsError::WrappedKeyFormat(m)) => m,
            other => panic!("expected a WrappedKeyFormat error, got {other:?}"),
        }
    }

    #[test]
    fn layout_round_trips() {
        for (scheme, total) in [(1u8, 79usize), (2, 59)] {
            let bytes = sample(scheme);
            assert_eq!(bytes.len(), total);
            assert_eq!(bytes[0], scheme);
            assert_eq!(&bytes[1..17], &[7; 16]);
            assert_eq!(u16::from_be_bytes([bytes[17], bytes[18]]) as usize, total - 19);
            let wk = WrappedKey::from_bytes(&bytes).unwrap();
            assert_eq!(wk.scheme(), scheme);
            assert_eq!(wk.primary_key_id(), &[7; 16]);
            assert_eq!(wk.wrapped(), &bytes[19..]);
            assert_eq!(wk.to_bytes(), bytes);
        }
    }

    #[test]
    fn truncated_envelopes_are_refused() {
        let bytes = sample(1);
        for len in 0..19 {
            let m = format_error(&bytes[..len]);
            assert!(m.contains("at least 19 bytes") && m.contains(&format!("got {len}")), "{m}");
        }
        for len in 19..bytes.len() {
            let m = format_error(&bytes[..len]);
            assert_eq!(m, format!("wrapped key truncated: 79 bytes expected, {len} present"));
        }
    }

    #[test]
    fn unknown_schemes_are_refused() {
        for scheme in [0u8, 3, 0x81, 0xff] {
            let mut bytes = sample(1);
            bytes[0] = scheme;
            assert_eq!(format_error(&bytes), format!("unknown wrapped key scheme {scheme} (known: [1, 2])"));
        }
        assert!(matches!(WrappedKey::new(9, [0; 16], vec![0; 40]), Err(KmsError::WrappedKeyFormat(_))));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        // The length field of the other scheme, one more, one less, zero.
        for (scheme, field) in [(1u8, 40u16), (1, 61), (1, 59), (1, 0), (2, 60), (2, 41), (2, 39)] {
            let mut bytes = sample(scheme);
            bytes[17..19].copy_from_slice(&field.to_be_bytes());
            let m = format_error(&bytes);
            assert!(m.contains(&format!("the length field says {field}")), "{m}");
        }
        // Scheme 2's bytes relabelled scheme 1 (and back): the length field no longer fits.
        let mut bytes = sample(2);
        bytes[0] = 1;
        assert!(format_error(&bytes).contains("scheme 1 needs a 60-byte wrapped key"));
        // Trailing bytes: from_bytes refuses them, from_prefix reports the length used.
        let mut bytes = sample(2);
        bytes.extend_from_slice(b"xyz");
        assert_eq!(format_error(&bytes), "3 unexpected bytes after the wrapped key (59 bytes)");
        let (wk, used) = WrappedKey::from_prefix(&bytes).unwrap();
        assert_eq!((wk.scheme(), used), (2, 59));
        // The constructor's own check.
        match WrappedKey::new(1, [0; 16], vec![0; 59]) {
            Err(KmsError::WrappedKeyFormat(m)) => {
                assert_eq!(m, "scheme 1 wraps a 32-byte data key into exactly 60 bytes, got 59")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scheme_mismatch_is_an_unwrap_error() {
        let wk = WrappedKey::from_bytes(&sample(2)).unwrap();
        match wk.check_scheme(SCHEME_LOCAL_AES_GCM, "local:/k") {
            Err(KmsError::Unwrap(m)) => assert_eq!(
                m,
                "data key under primary key 07070707070707070707070707070707 uses scheme \
                 2 (PKCS#11 AES key wrap, RFC 3394), which local:/k cannot unwrap \
                 (it handles scheme 1 (local AES-256-GCM))"
            ),
            other => panic!("{other:?}"),
        }
        assert!(wk.check_scheme(SCHEME_PKCS11_AES_KEY_WRAP, "pkcs11:").is_ok());
    }
}
