//! Errors of spill streams: what went wrong and where — the file, the segment, the
//! operation — with the error underneath as [`std::error::Error::source`]: the
//! format's ([`exitless_seal::Error`]), or the backend's ([`std::io::Error`]).
//!
//! The classes the C ABI and Python keep apart are variants: [`SpillError::Format`],
//! [`SpillError::Integrity`], [`SpillError::Io`] (an errno),
//! [`SpillError::RejectedCompletion`] (the host returned a completion that failed
//! validation: a hostile host, not a failing disk), [`SpillError::InvalidArgument`]
//! and [`SpillError::Closed`]. `Display` says what and where, and includes the
//! source's own message (the C ABI and Python see only the text). No message
//! carries key material.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use exitless_io::error::{rejected_completion, RejectedCompletion};
use exitless_io::BackendKind;

/// What a stream was doing when its IO failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Setting up a backend of this kind.
    SetUp(BackendKind),
    /// Creating (or truncating) the file.
    Create,
    /// Opening the file.
    Open,
    /// Asking for the file's type and length.
    Stat,
    /// Reading the file's header.
    ReadHeader,
    /// Reading: a segment (the error's segment), or, without one, waiting for the
    /// backend's reads.
    Read,
    /// Writing: a segment (the error's segment), or, without one, waiting for the
    /// backend's writes.
    Write,
    /// Trimming a direct-IO file's padding.
    Trim,
    /// Flushing the file to stable storage.
    Sync,
    /// Closing the file.
    Close,
    /// Deleting the file.
    Delete,
}

impl Op {
    /// What failed, in words, before the path: "cannot read segment 3 of".
    fn describe(self, f: &mut fmt::Formatter<'_>, segment: Option<u64>) -> fmt::Result {
        match (self, segment) {
            (Self::SetUp(kind), _) => write!(f, "cannot set up the {} backend", kind.name()),
            (Self::Read, Some(s)) => write!(f, "cannot read segment {s} of"),
            (Self::Write, Some(s)) => write!(f, "cannot write segment {s} of"),
            (Self::Read, None) => f.write_str("IO backend failed while reading"),
            (Self::Write, None) => f.write_str("IO backend failed while writing"),
            (Self::Create, _) => f.write_str("cannot create"),
            (Self::Open, _) => f.write_str("cannot open"),
            (Self::Stat, _) => f.write_str("cannot stat"),
            (Self::ReadHeader, _) => f.write_str("cannot read header of"),
            (Self::Trim, _) => f.write_str("cannot trim"),
            (Self::Sync, _) => f.write_str("cannot sync"),
            (Self::Close, _) => f.write_str("cannot close"),
            (Self::Delete, _) => f.write_str("cannot delete"),
        }
    }
}

/// Why a file is no (whole, authentic) sealed stream: the format's own check, or
/// one the stream makes of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The format's check failed: this error is the [`source`](StdError::source).
    Seal(exitless_seal::Error),
    /// A device, FIFO or socket, not a regular file.
    NotRegularFile,
    /// A segment's read came back short: the file shrank while open.
    Shrank,
    /// A range never written (a hole) at byte `at` of a `file_len`-byte file.
    Hole {
        /// Where the hole starts.
        at: u64,
        /// The file's length.
        file_len: u64,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seal(e) => write!(f, "{e}"),
            Self::NotRegularFile => f.write_str("not a regular file"),
            Self::Shrank => f.write_str("truncated: the file shrank while open"),
            Self::Hole { at, file_len } => write!(
                f,
                "the file has a hole at byte {at} of {file_len} (a range never written): it is not a whole \
                 sealed stream (tampered with, or left incomplete)"
            ),
        }
    }
}

/// What went wrong with a spill stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpillError {
    /// Not a sealed stream, or an unsupported version or parameters.
    #[non_exhaustive]
    Format {
        /// The file.
        path: Option<String>,
        /// The segment, where one is concerned.
        segment: Option<u64>,
        /// Why.
        cause: Cause,
    },
    /// Authentication failed: tampered, truncated, reordered, wrong key or context.
    #[non_exhaustive]
    Integrity {
        /// The file.
        path: Option<String>,
        /// The segment, where one is concerned.
        segment: Option<u64>,
        /// Why.
        cause: Cause,
        /// The final segment failed at open in a stream of several: the likely
        /// reason is a truncated file.
        maybe_truncated: bool,
    },
    /// An operating-system error (it has an errno: [`errno`](Self::errno)).
    #[non_exhaustive]
    Io {
        /// The file (`None` when setting up a backend).
        path: Option<String>,
        /// What the stream was doing.
        op: Op,
        /// The segment being read or written, where one was.
        segment: Option<u64>,
        /// The backend's error.
        source: io::Error,
    },
    /// The host returned a completion that failed validation (a forged or
    /// corrupt io_uring completion, or switchless worker result): treat the host as
    /// hostile. Nothing of it was used; the backend that received it refuses all
    /// further work (a new stream gets another). No errno.
    #[non_exhaustive]
    RejectedCompletion {
        /// The file.
        path: Option<String>,
        /// What the stream was doing.
        op: Op,
        /// The segment being read or written, where one was.
        segment: Option<u64>,
        /// The backend's error, which carries the [`RejectedCompletion`]
        /// ([`rejected_completion`](Self::rejected_completion)).
        source: io::Error,
    },
    /// The caller passed something unusable.
    #[non_exhaustive]
    InvalidArgument {
        /// The file, where one is concerned.
        path: Option<String>,
        /// What is wrong with it (empty when the source says it all).
        message: String,
        /// The error underneath, if any (the format's, for a bad parameter).
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The writer was closed, or failed earlier.
    #[non_exhaustive]
    Closed {
        /// The file.
        path: Option<String>,
        /// An earlier operation failed (the stream is incomplete), rather than the
        /// writer having been closed.
        after_failure: bool,
    },
}

/// Result alias.
pub type SpillResult<T = ()> = Result<T, SpillError>;

impl SpillError {
    /// The format's error `err` concerning `path`, in its class.
    pub(crate) fn seal(err: exitless_seal::Error, path: &str) -> Self {
        use exitless_seal::ErrorKind;
        let (path, segment) = (Some(path.to_owned()), err.segment());
        match err.kind() {
            ErrorKind::Format => Self::Format { path, segment, cause: Cause::Seal(err) },
            ErrorKind::Integrity => {
                Self::Integrity { path, segment, cause: Cause::Seal(err), maybe_truncated: false }
            }
            ErrorKind::InvalidArgument => {
                Self::InvalidArgument { path, message: String::new(), source: Some(Box::new(err)) }
            }
        }
    }

    /// The backend's error `err` while doing `op` on `path`: an IO error, or a
    /// rejected completion. Public for code that drives a pooled backend itself (the
    /// benchmarks' plaintext baseline).
    pub fn io(err: io::Error, op: Op, path: &str) -> Self {
        Self::io_on(err, op, Some(path.to_owned()))
    }

    fn io_on(source: io::Error, op: Op, path: Option<String>) -> Self {
        if rejected_completion(&source).is_some() {
            Self::RejectedCompletion { path, op, segment: None, source }
        } else {
            Self::Io { path, op, segment: None, source }
        }
    }

    /// A backend of `kind` could not be set up.
    pub(crate) fn set_up(err: io::Error, kind: BackendKind) -> Self {
        Self::io_on(err, Op::SetUp(kind), None)
    }

    /// A caller's mistake, concerning `path` if given.
    pub(crate) fn invalid(path: Option<&str>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { path: path.map(str::to_owned), message: message.into(), source: None }
    }

    /// A file that is no whole sealed stream, for `cause`.
    pub(crate) fn integrity(path: &str, cause: Cause) -> Self {
        Self::Integrity { path: Some(path.to_owned()), segment: None, cause, maybe_truncated: false }
    }

    /// A file that is no sealed stream at all, for `cause`.
    pub(crate) fn format(path: &str, cause: Cause) -> Self {
        Self::Format { path: Some(path.to_owned()), segment: None, cause }
    }

    /// The same error, concerning segment `index`.
    pub(crate) fn at_segment(mut self, index: u64) -> Self {
        match &mut self {
            Self::Format { segment, .. }
            | Self::Integrity { segment, .. }
            | Self::Io { segment, .. }
            | Self::RejectedCompletion { segment, .. } => *segment = Some(index),
            Self::InvalidArgument { .. } | Self::Closed { .. } => {}
        }
        self
    }

    /// An integrity error of the final segment, checked at open, of a stream of
    /// several segments: the file may be truncated (other errors are unchanged).
    pub(crate) fn maybe_truncated(mut self) -> Self {
        if let Self::Integrity { maybe_truncated, .. } = &mut self {
            *maybe_truncated = true;
        }
        self
    }

    /// The file the error concerns, if known.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Format { path, .. }
            | Self::Integrity { path, .. }
            | Self::Io { path, .. }
            | Self::RejectedCompletion { path, .. }
            | Self::InvalidArgument { path, .. }
            | Self::Closed { path, .. } => path.as_deref(),
        }
    }

    /// The segment the error concerns, if known.
    pub fn segment(&self) -> Option<u64> {
        match self {
            Self::Format { segment, .. }
            | Self::Integrity { segment, .. }
            | Self::Io { segment, .. }
            | Self::RejectedCompletion { segment, .. } => *segment,
            Self::InvalidArgument { .. } | Self::Closed { .. } => None,
        }
    }

    /// What the stream was doing, for an IO error or a rejected completion.
    pub fn op(&self) -> Option<Op> {
        match self {
            Self::Io { op, .. } | Self::RejectedCompletion { op, .. } => Some(*op),
            _ => None,
        }
    }

    /// The errno of an IO error (`None` for every other error, and for an IO error
    /// that came with none, such as a write that made no progress).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The completion that failed validation, for [`SpillError::RejectedCompletion`].
    pub fn rejected_completion(&self) -> Option<&RejectedCompletion> {
        match self {
            Self::RejectedCompletion { source, .. } => rejected_completion(source),
            _ => None,
        }
    }
}

/// Writes `path`, quoted if it holds a character no message should (a NUL).
fn write_path(f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
    if path.chars().any(char::is_control) {
        write!(f, "{path:?}")
    } else {
        f.write_str(path)
    }
}

impl fmt::Display for SpillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format { path, segment, cause } | Self::Integrity { path, segment, cause, .. } => {
                if let Some(path) = path {
                    write_path(f, path)?;
                    f.write_str(": ")?;
                }
                // The format's error names its segment itself.
                match (segment, cause) {
                    (Some(s), c) if !matches!(c, Cause::Seal(e) if e.segment().is_some()) => {
                        write!(f, "segment {s}: {cause}")?
                    }
                    _ => write!(f, "{cause}")?,
                }
                if matches!(self, Self::Integrity { maybe_truncated: true, .. }) {
                    f.write_str(" (the stream may be truncated)")?;
                }
                Ok(())
            }
            Self::Io { path, op, segment, source }
            | Self::RejectedCompletion { path, op, segment, source } => {
                op.describe(f, *segment)?;
                if let Some(path) = path {
                    f.write_str(" ")?;
                    write_path(f, path)?;
                }
                write!(f, ": {source}")
            }
            Self::InvalidArgument { path, message, source } => {
                if let Some(path) = path {
                    write_path(f, path)?;
                    f.write_str(": ")?;
                }
                f.write_str(message)?;
                match source {
                    Some(source) if message.is_empty() => write!(f, "{source}"),
                    Some(source) => write!(f, ": {source}"),
                    None => Ok(()),
                }
            }
            Self::Closed { path, after_failure } => {
                if let Some(path) = path {
                    write_path(f, path)?;
                    f.write_str(": ")?;
                }
                f.write_str(if *after_failure {
                    "an earlier write failed; the stream is incomplete"
                } else {
                    "writer is closed"
                })
            }
        }
    }
}

impl StdError for SpillError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Format { cause: Cause::Seal(e), .. } | Self::Integrity { cause: Cause::Seal(e), .. } => {
                Some(e)
            }
            Self::Io { source, .. } | Self::RejectedCompletion { source, .. } => Some(source),
            Self::InvalidArgument { source: Some(source), .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use exitless_io::error::Reporter;
    use exitless_io::validate::Rejected;

    use super::*;

    #[test]
    fn messages_say_what_and_where_and_sources_are_kept() {
        let e =
            SpillError::io(io::Error::from_raw_os_error(libc::ENOSPC), Op::Write, "/spill/a").at_segment(7);
        assert_eq!(
            (e.path(), e.segment(), e.op(), e.errno()),
            (Some("/spill/a"), Some(7), Some(Op::Write), Some(28))
        );
        assert!(e.to_string().starts_with("cannot write segment 7 of /spill/a: "), "{e}");
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("the io error");
        assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));

        let e = SpillError::io(io::Error::from_raw_os_error(libc::EIO), Op::Read, "/spill/a");
        assert!(e.to_string().starts_with("IO backend failed while reading /spill/a: "), "{e}");
        let e = SpillError::set_up(io::Error::from_raw_os_error(libc::ENOMEM), BackendKind::Uring);
        assert!(e.to_string().starts_with("cannot set up the uring backend: "), "{e}");
        assert_eq!((e.path(), e.errno()), (None, Some(libc::ENOMEM)));

        let e = SpillError::integrity("/spill/a", Cause::Shrank).at_segment(3);
        assert_eq!(e.to_string(), "/spill/a: segment 3: truncated: the file shrank while open");
        assert!(e.source().is_none());
        let e = SpillError::invalid(Some("a\0b"), "a path cannot hold a NUL byte");
        assert_eq!(e.to_string(), "\"a\\0b\": a path cannot hold a NUL byte");
        let closed = SpillError::Closed { path: Some("/x".into()), after_failure: true };
        assert_eq!(closed.to_string(), "/x: an earlier write failed; the stream is incomplete");
    }

    #[test]
    fn a_rejected_completion_is_its_own_variant_without_errno() {
        let why = Rejected::TooLong { slot: 1, requested: 4096, reported: 4097 };
        let source = io::Error::from(RejectedCompletion::new(Reporter::Kernel, why));
        let e = SpillError::io(source, Op::Write, "/spill/a").at_segment(1);
        assert!(matches!(e, SpillError::RejectedCompletion { segment: Some(1), op: Op::Write, .. }), "{e:?}");
        assert_eq!(e.errno(), None);
        assert_eq!(e.rejected_completion().map(RejectedCompletion::why), Some(why));
        assert_eq!(
            e.to_string(),
            "cannot write segment 1 of /spill/a: rejected a completion from the kernel: completion for slot 1 \
             reports 4097 bytes, but 4096 were requested"
        );
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("the io error");
        assert!(rejected_completion(source).is_some());
    }
}
