//! Errors, in the format's two classes plus caller mistakes.

use core::fmt;

/// Which class an [`Error`] belongs to (docs/FORMAT.md, section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a sealed stream, or a version, algorithm or parameter this reader does not support.
    Format,
    /// Authentication failed: tampered, truncated, reordered or spliced data, wrong key or context.
    Integrity,
    /// The caller passed something unusable (a buffer too small, a segment too large, ...).
    InvalidArgument,
}

/// An error from sealing or opening. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    what: &'static str,
    segment: Option<u64>,
}

impl Error {
    pub(crate) const fn format(what: &'static str) -> Self {
        Self { kind: ErrorKind::Format, what, segment: None }
    }
    pub(crate) const fn integrity(what: &'static str) -> Self {
        Self { kind: ErrorKind::Integrity, what, segment: None }
    }
    pub(crate) const fn invalid(what: &'static str) -> Self {
        Self { kind: ErrorKind::InvalidArgument, what, segment: None }
    }
    pub(crate) const fn at_segment(mut self, index: u64) -> Self {
        self.segment = Some(index);
        self
    }

    /// The error class.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// What went wrong, in words.
    pub const fn what(&self) -> &'static str {
        self.what
    }
    /// The segment index the error concerns, if any.
    pub const fn segment(&self) -> Option<u64> {
        self.segment
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.segment {
            Some(i) => write!(f, "segment {i}: {}", self.what),
            None => f.write_str(self.what),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;
