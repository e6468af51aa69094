//! Errors of a sealed file, each with the errno a LibOS reports for it.

use core::fmt;

use exitless_seal::ErrorKind;

use crate::device::errno::{EFBIG, EINVAL, EIO};
use crate::device::DeviceError;

/// What went wrong with a sealed file. Never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The host file IO failed (errno from the host or the device).
    Device(i32),
    /// The sealed stream is not one, or does not authenticate (tampered, truncated,
    /// swapped, wrong key or context).
    Sealed(exitless_seal::Error),
    /// A caller mistake or an unsupported request.
    Invalid(&'static str),
    /// The file exceeds what the format can hold (2^32 segments).
    TooLarge,
    /// The host file ends inside a segment it should hold in full.
    Truncated,
    /// An earlier rewrite failed halfway: the host file is in an unknown state.
    Broken,
}

impl Error {
    /// The errno to report: integrity and format failures are `EIO`.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Device(e) => *e,
            Self::Sealed(e) => match e.kind() {
                ErrorKind::Format | ErrorKind::Integrity => EIO,
                ErrorKind::InvalidArgument => EINVAL,
            },
            Self::Invalid(_) => EINVAL,
            Self::TooLarge => EFBIG,
            Self::Truncated | Self::Broken => EIO,
        }
    }

    /// Whether this is an authentication or format failure (the data was changed).
    pub fn is_integrity(&self) -> bool {
        matches!(self, Self::Truncated)
            || matches!(self, Self::Sealed(e) if e.kind() != ErrorKind::InvalidArgument)
    }
}

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Self {
        Self::Device(e.0)
    }
}

impl From<exitless_seal::Error> for Error {
    fn from(e: exitless_seal::Error) -> Self {
        Self::Sealed(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "host file IO failed (errno {e})"),
            Self::Sealed(e) => write!(f, "sealed stream: {e}"),
            Self::Invalid(what) => f.write_str(what),
            Self::TooLarge => f.write_str("file too large for a sealed stream"),
            Self::Truncated => f.write_str("sealed file truncated inside a segment"),
            Self::Broken => f.write_str("an earlier rewrite of this file failed"),
        }
    }
}
