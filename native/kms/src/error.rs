//! [`KmsError`]: the Python package's KMS error classes (`exitless.kms.base`), one
//! variant each. Messages say what failed and where (path, token label, primary key
//! id in hex) and never carry key bytes or a PIN.

use std::fmt;

/// Why a KMS operation failed. Each variant is one of `exitless.kms`'s error classes
/// and holds the message (the same wording as Python's, where it can be).
#[derive(Clone, PartialEq, Eq)]
pub enum KmsError {
    /// `KmsConfigError`: a bad URI, an unset or empty PIN variable, a PIN file that
    /// is not a regular file or not UTF-8, a missing or unloadable PKCS#11 module, no
    /// (or several) tokens with the label, a keyring path that is not a regular file.
    Config(String),
    /// `InsecureKeyringError`: a keyring or PIN file that is a symbolic link, belongs
    /// to another user than the caller or root, or that group or others may access.
    InsecureKeyring(String),
    /// `KeyringFormatError`: a keyring that is not the expected JSON (or larger than
    /// 16 MiB).
    KeyringFormat(String),
    /// `WrappedKeyFormatError`: envelope bytes that are not one well-formed wrapped
    /// key (shorter than 19 bytes, unknown scheme, wrong length field, truncated,
    /// trailing bytes).
    WrappedKeyFormat(String),
    /// `UnwrapError`: the envelope's primary key is unknown to this KMS, its scheme
    /// is another KMS kind's, or it fails authentication (wrong primary key, modified
    /// bytes). No key material is returned.
    Unwrap(String),
    /// `KmsError` itself: no primary key yet, a primary key without the required
    /// protections, a token that refused an operation, a file that cannot be read.
    Kms(String),
}

impl KmsError {
    /// The message, without the class name.
    pub fn message(&self) -> &str {
        match self {
            Self::Config(m)
            | Self::InsecureKeyring(m)
            | Self::KeyringFormat(m)
            | Self::WrappedKeyFormat(m)
            | Self::Unwrap(m)
            | Self::Kms(m) => m,
        }
    }

    /// The name of the Python class this variant mirrors, e.g. `"UnwrapError"`.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Config(_) => "KmsConfigError",
            Self::InsecureKeyring(_) => "InsecureKeyringError",
            Self::KeyringFormat(_) => "KeyringFormatError",
            Self::WrappedKeyFormat(_) => "WrappedKeyFormatError",
            Self::Unwrap(_) => "UnwrapError",
            Self::Kms(_) => "KmsError",
        }
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Debug for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.class_name(), self.message())
    }
}

impl std::error::Error for KmsError {}

/// `Result` with a [`KmsError`].
pub type Result<T> = std::result::Result<T, KmsError>;
