//! Errors of spill streams: the format's classes, IO errors with their errno, and
//! caller mistakes, each with a message naming the file (and segment).

use std::fmt;
use std::io;

/// What went wrong with a spill stream.
#[derive(Debug)]
pub enum SpillError {
    /// Not a sealed stream, or unsupported version or parameters.
    Format(String),
    /// Authentication failed: tampered, truncated, reordered, wrong key or context.
    Integrity(String),
    /// An operating-system error (`errno` 0 when there was none, e.g. a rejected completion).
    Io {
        /// The errno.
        errno: i32,
        /// What failed, and where.
        message: String,
    },
    /// The caller passed something unusable.
    InvalidArgument(String),
    /// The stream was closed, or failed earlier.
    Closed(String),
}

/// Result alias.
pub type SpillResult<T = ()> = Result<T, SpillError>;

impl SpillError {
    /// A format-level error concerning `path`.
    pub fn seal(err: &exitless_seal::Error, path: &str) -> Self {
        use exitless_seal::ErrorKind;
        let message = format!("{path}: {err}");
        match err.kind() {
            ErrorKind::Format => Self::Format(message),
            ErrorKind::Integrity => Self::Integrity(message),
            ErrorKind::InvalidArgument => Self::InvalidArgument(message),
        }
    }

    /// An IO error: `what` failed on `path`.
    pub fn io(err: &io::Error, what: &str, path: &str) -> Self {
        Self::Io { errno: err.raw_os_error().unwrap_or(0), message: format!("{what} {path}: {err}") }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Format(m) | Self::Integrity(m) | Self::InvalidArgument(m) | Self::Closed(m) => m,
            Self::Io { message, .. } => message,
        }
    }
}

impl fmt::Display for SpillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SpillError {}
