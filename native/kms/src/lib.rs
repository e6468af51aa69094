//! exitless-kms: the unwrap-and-generate side of the Python package's KMS layer
//! (`exitless.kms`, docs/KMS.md), byte-compatible with it, for callers outside Python
//! (exitless-jni: Spark's and Hadoop's codecs on the JVM). A [`Kms`] opened from the
//! same URI as Python's `open_kms` unwraps the envelopes Python wrote, and the
//! envelopes it writes unwrap in Python. Creating keyrings and primary keys, rotation
//! and listing stay with the Python package.
//!
//! Map of the crate:
//! - [`Kms`] (here): the one entry point, [`Kms::open`] from a URI, then
//!   [`Kms::unwrap`] and [`Kms::generate_data_key`].
//! - [`envelope`]: [`WrappedKey`], the envelope's byte layout (scheme, primary key id,
//!   length, wrapped key) and its parsing errors.
//! - [`local`]: [`LocalKms`] (`local:PATH`), primary keys in a 0600 JSON keyring;
//!   AES-256-GCM wrapping (scheme 1).
//! - [`pkcs11`]: [`Pkcs11Kms`] (`pkcs11:...`), primary keys inside a PKCS#11 token
//!   (SoftHSM2 in the tests); `CKM_AES_KEY_WRAP`, RFC 3394 (scheme 2). Holds the
//!   crate's only `unsafe`: reading a key's `CKA_VALUE` into a buffer it wipes.
//! - [`error`]: [`KmsError`], one variant per Python error class.
//! - private `uri`: the `local:` and `pkcs11:` URI syntax, as Python parses it.
//! - private `files`: reading keyring and PIN files with Python's checks (no symbolic
//!   link, regular file, owner-only mode, size limit).
//! - private `compat` and `isotime`: the bits of Python's standard library whose exact
//!   behaviour the keyring and label checks depend on (`bytes.fromhex`,
//!   `os.path.abspath`, `urllib.parse.quote`/`unquote`, `datetime.fromisoformat`).
//!
//! Key bytes never appear in a message or a `Debug` output: errors name primary keys
//! by their 16-byte id in hex. Data keys are [`exitless_seal::DataKey`]s (zeroized on
//! drop), and every buffer here that holds key bytes (primary keys, the keyring's
//! text, a token's `CKA_VALUE`, the PIN) is wiped when dropped.

#![deny(unsafe_code)] // one exception: pkcs11's `RawValueReader`, with its safety arguments

pub mod envelope;
pub mod error;
pub mod local;
pub mod pkcs11;

mod compat;
mod files;
mod isotime;
#[cfg(test)]
mod python_check;
mod uri;

use exitless_seal::DataKey;
use zeroize::Zeroizing;

pub use envelope::{WrappedKey, KEY_ID_LEN, SCHEME_LOCAL_AES_GCM, SCHEME_PKCS11_AES_KEY_WRAP};
pub use error::{KmsError, Result};
pub use local::LocalKms;
pub use pkcs11::Pkcs11Kms;

/// Length of a data key.
pub(crate) const KEY_LEN: usize = exitless_seal::key::KEY_LEN;

/// A KMS opened from its URI: the two kinds the Python package has.
#[derive(Debug)]
pub enum Kms {
    /// `local:PATH`: a keyring file (scheme 1).
    Local(LocalKms),
    /// `pkcs11:...`: a PKCS#11 token (scheme 2).
    Pkcs11(Pkcs11Kms),
}

impl Kms {
    /// Opens a KMS from a URI, as Python's `exitless.kms.open_kms`:
    ///
    /// - `local:PATH`: an existing keyring; PATH taken literally (no percent-decoding)
    ///   and made absolute.
    /// - `pkcs11:module=PATH;token=LABEL;pin-env=VARIABLE` or `...;pin-file=PATH`
    ///   (values percent-encoded; the RFC 7512 spellings accepted too). A PIN written
    ///   in the URI is refused ([`KmsError::Config`]).
    pub fn open(uri: &str) -> Result<Kms> {
        match uri::parse(uri)? {
            uri::KmsUri::Local(path) => LocalKms::open(&path).map(Kms::Local),
            uri::KmsUri::Pkcs11(parsed) => Pkcs11Kms::from_parsed(&parsed).map(Kms::Pkcs11),
        }
    }

    /// The data key inside `envelope`, the serialized `WrappedKey` a version-2
    /// sealed file carries in its header. [`KmsError::WrappedKeyFormat`] for bytes
    /// that are not one wrapped key; [`KmsError::Unwrap`] for an envelope of the other
    /// KMS kind, an unknown primary key, or one that fails authentication.
    pub fn unwrap(&self, envelope: &[u8]) -> Result<DataKey> {
        match self {
            Kms::Local(k) => k.unwrap(envelope),
            Kms::Pkcs11(k) => k.unwrap(envelope),
        }
    }

    /// A fresh random data key wrapped under the primary key `key_id`, or under the
    /// current (newest) primary key for `None`, as Python's
    /// `generate_data_key(key_id)`. Returns the data key, the primary key's id (what a
    /// version-2 header records as its key id) and the envelope bytes.
    pub fn generate_data_key(
        &self,
        key_id: Option<[u8; KEY_ID_LEN]>,
    ) -> Result<(DataKey, [u8; KEY_ID_LEN], Vec<u8>)> {
        match self {
            Kms::Local(k) => k.generate_data_key(key_id),
            Kms::Pkcs11(k) => k.generate_data_key(key_id),
        }
    }

    /// Where the KMS lives, without secrets: `local:/abs/path` or
    /// `pkcs11:module=...;token=...;pin-env=VAR` (Python's `uri`).
    pub fn uri(&self) -> &str {
        match self {
            Kms::Local(k) => k.uri(),
            Kms::Pkcs11(k) => k.uri(),
        }
    }
}

/// 32 random bytes from the OS, as a data key.
pub(crate) fn random_data_key() -> Result<DataKey> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::getrandom(&mut bytes[..])
        .map_err(|e| KmsError::Kms(format!("the OS random number generator failed: {e}")))?;
    DataKey::from_slice(&bytes[..]).map_err(|_| KmsError::Kms("a data key is 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Kms>();
        check::<KmsError>();
    }

    #[test]
    fn open_refuses_bad_uris_before_touching_anything() {
        for uri in ["", "local:", "kms:x", "pkcs11:module=/nonexistent.so;token=t;pin=1"] {
            assert!(matches!(Kms::open(uri), Err(KmsError::Config(_))), "{uri}");
        }
    }
}
