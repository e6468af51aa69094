//! The error type of the backend interface.
//!
//! With `std` it is `std::io::Error` itself ([`Error`], [`ErrorKind`] are re-exports),
//! so existing callers see no difference. Without `std` it is a small core + alloc
//! stand-in with the subset of `std::io::Error`'s API this crate uses —
//! [`Error::new`], [`Error::other`], [`Error::from_raw_os_error`],
//! [`Error::raw_os_error`], [`Error::kind`], `Display`, `From<ErrorKind>` — and an
//! [`ErrorKind`] whose variants carry `std::io::ErrorKind`'s names. Code written
//! against that subset builds either way, so enabling `std` (features are additive)
//! breaks no no_std user.
//!
//! A compiler without `core::error::Error` (before Rust 1.81, e.g. Occlum's
//! nightly-2022-10-22; build.rs detects it) gets the same stand-in except that the
//! payload of [`Error::new`] / [`Error::other`] is any `Display + Debug + Send + Sync`
//! value (`&'static str`, `String`, an error type) and `Error` implements no error
//! trait.
//!
//! Errnos are Linux's ([`crate::errno`]): on Occlum they come from the host kernel.
//!
//! One error is this crate's own: [`RejectedCompletion`], a completion that failed
//! validation ([`crate::validate`]): the host kernel (or a switchless host worker)
//! reported something no honest one does, so the host is to be treated as hostile,
//! not as a failing disk. It is kept apart from every errno: an [`Error`] made from
//! it (`From<RejectedCompletion>`) has [`ErrorKind::InvalidData`], no errno, and is
//! recognized by [`rejected_completion`]. With `std` it travels as the payload of a
//! `std::io::Error` (the [`Backend`](crate::Backend) trait keeps `std::io`'s error
//! type); the no_std stand-in has a variant of its own for it.

use core::fmt;

use crate::validate::Rejected;

#[cfg(feature = "std")]
pub use std::io::{Error, ErrorKind};

#[cfg(not(feature = "std"))]
pub use core_io::{Error, ErrorKind};

/// `Result` with this crate's [`Error`] (`std::io::Result` with `std`).
pub type Result<T> = core::result::Result<T, Error>;

/// Who handed a backend the completion it rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reporter {
    /// The host kernel, through io_uring's completion ring.
    Kernel,
    /// A switchless host worker thread, through its request slot.
    SwitchlessWorker,
}

impl Reporter {
    const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "the kernel",
            Self::SwitchlessWorker => "a switchless worker",
        }
    }

    const fn backend(self) -> &'static str {
        match self {
            Self::Kernel => "io_uring",
            Self::SwitchlessWorker => "switchless",
        }
    }
}

/// A completion that failed validation: the host returned a result no honest
/// kernel returns (a stale or invented `user_data`, more bytes than were asked
/// for, an errno no file operation has, a ring claiming more entries than it
/// holds). Nothing of it was used. The backend that received it counts it in
/// [`Counters::completions_rejected`](crate::Counters::completions_rejected), and an
/// io_uring backend refuses all further work with this error
/// ([`is_earlier`](Self::is_earlier) then says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectedCompletion {
    why: Rejected,
    reporter: Reporter,
    earlier: bool,
}

impl RejectedCompletion {
    /// `reporter` handed over a completion that the validator rejected for `why`.
    pub const fn new(reporter: Reporter, why: Rejected) -> Self {
        Self { why, reporter, earlier: false }
    }

    /// The same rejection, reported again by the backend it disabled (it refuses
    /// every operation after it).
    pub const fn again(self) -> Self {
        Self { earlier: true, ..self }
    }

    /// What the validator found.
    pub const fn why(&self) -> Rejected {
        self.why
    }

    /// Who reported the completion.
    pub const fn reporter(&self) -> Reporter {
        self.reporter
    }

    /// Whether the completion was rejected by an earlier operation (this one was
    /// refused because of it, and never started).
    pub const fn is_earlier(&self) -> bool {
        self.earlier
    }
}

impl fmt::Display for RejectedCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.earlier {
            write!(f, "{} backend disabled: ", self.reporter.backend())?;
        }
        write!(f, "rejected a completion from {}: {}", self.reporter.name(), self.why)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RejectedCompletion {}

#[cfg(all(not(feature = "std"), not(exitless_no_core_error)))]
impl core::error::Error for RejectedCompletion {}

#[cfg(feature = "std")]
impl From<RejectedCompletion> for Error {
    fn from(rejected: RejectedCompletion) -> Self {
        Error::new(ErrorKind::InvalidData, rejected)
    }
}

/// The [`RejectedCompletion`] `err` reports, if it reports one (and not an errno, or
/// any other failure).
#[cfg(feature = "std")]
pub fn rejected_completion(err: &Error) -> Option<&RejectedCompletion> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<RejectedCompletion>())
}

/// The [`RejectedCompletion`] `err` reports, if it reports one (and not an errno, or
/// any other failure).
#[cfg(not(feature = "std"))]
pub fn rejected_completion(err: &Error) -> Option<&RejectedCompletion> {
    err.rejected_completion()
}

#[cfg(not(feature = "std"))]
mod core_io {
    use alloc::boxed::Box;
    use core::fmt;

    use super::RejectedCompletion;
    use crate::errno;

    /// A coarse category of [`Error`]; the names are `std::io::ErrorKind`'s.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum ErrorKind {
        /// A parameter was wrong (bad slot, too long a transfer, …).
        InvalidInput,
        /// Data was invalid (e.g. a rejected completion).
        InvalidData,
        /// The operation was interrupted (EINTR) and may be retried.
        Interrupted,
        /// The operation would block (EAGAIN).
        WouldBlock,
        /// A write transferred no bytes.
        WriteZero,
        /// Input ended early.
        UnexpectedEof,
        /// The operation is not supported (EOPNOTSUPP).
        Unsupported,
        /// Out of memory (ENOMEM).
        OutOfMemory,
        /// Not permitted (EPERM, EACCES).
        PermissionDenied,
        /// The file system is full (ENOSPC).
        StorageFull,
        /// Anything else.
        Other,
    }

    impl ErrorKind {
        fn as_str(self) -> &'static str {
            match self {
                Self::InvalidInput => "invalid input parameter",
                Self::InvalidData => "invalid data",
                Self::Interrupted => "operation interrupted",
                Self::WouldBlock => "operation would block",
                Self::WriteZero => "write zero",
                Self::UnexpectedEof => "unexpected end of file",
                Self::Unsupported => "unsupported",
                Self::OutOfMemory => "out of memory",
                Self::PermissionDenied => "permission denied",
                Self::StorageFull => "no storage space",
                Self::Other => "other error",
            }
        }

        fn from_errno(code: i32) -> Self {
            match code {
                errno::EINTR => Self::Interrupted,
                errno::EAGAIN => Self::WouldBlock,
                errno::EINVAL => Self::InvalidInput,
                errno::EOPNOTSUPP => Self::Unsupported,
                errno::ENOMEM => Self::OutOfMemory,
                errno::EPERM | errno::EACCES => Self::PermissionDenied,
                errno::ENOSPC => Self::StorageFull,
                _ => Self::Other,
            }
        }
    }

    impl fmt::Display for ErrorKind {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.as_str())
        }
    }

    /// What [`Error::new`] keeps: any error (with `core::error::Error`) ...
    #[cfg(not(exitless_no_core_error))]
    type Payload = dyn core::error::Error + Send + Sync;
    /// ... or anything printable (a compiler before Rust 1.81).
    #[cfg(exitless_no_core_error)]
    type Payload = dyn Printable + Send + Sync;

    #[cfg(exitless_no_core_error)]
    trait Printable: fmt::Display + fmt::Debug {}
    #[cfg(exitless_no_core_error)]
    impl<T: fmt::Display + fmt::Debug + ?Sized> Printable for T {}

    enum Repr {
        Os(i32),
        Simple(ErrorKind),
        Custom(ErrorKind, Box<Payload>),
        /// A completion that failed validation: a variant of its own, so that it can
        /// be recognized without downcasting (which Rust 1.66 has no way to do).
        Rejected(RejectedCompletion),
    }

    /// An IO error: an errno, a kind, or a kind with a message (the no_std stand-in
    /// for `std::io::Error`).
    pub struct Error {
        repr: Repr,
    }

    impl Error {
        /// An error of `kind` carrying `error` (a message or another error).
        #[cfg(not(exitless_no_core_error))]
        pub fn new<E>(kind: ErrorKind, error: E) -> Self
        where
            E: Into<Box<dyn core::error::Error + Send + Sync>>,
        {
            Self { repr: Repr::Custom(kind, error.into()) }
        }

        /// An error of `kind` carrying `error` (a message or another error).
        #[cfg(exitless_no_core_error)]
        pub fn new<E>(kind: ErrorKind, error: E) -> Self
        where
            E: fmt::Display + fmt::Debug + Send + Sync + 'static,
        {
            Self { repr: Repr::Custom(kind, Box::new(error)) }
        }

        /// `Error::new(ErrorKind::Other, error)`.
        #[cfg(not(exitless_no_core_error))]
        pub fn other<E>(error: E) -> Self
        where
            E: Into<Box<dyn core::error::Error + Send + Sync>>,
        {
            Self::new(ErrorKind::Other, error)
        }

        /// `Error::new(ErrorKind::Other, error)`.
        #[cfg(exitless_no_core_error)]
        pub fn other<E>(error: E) -> Self
        where
            E: fmt::Display + fmt::Debug + Send + Sync + 'static,
        {
            Self::new(ErrorKind::Other, error)
        }

        /// The error for errno `code` (a positive Linux errno).
        pub fn from_raw_os_error(code: i32) -> Self {
            Self { repr: Repr::Os(code) }
        }

        /// The errno, if this error was made from one.
        pub fn raw_os_error(&self) -> Option<i32> {
            match self.repr {
                Repr::Os(code) => Some(code),
                _ => None,
            }
        }

        /// The error's category.
        pub fn kind(&self) -> ErrorKind {
            match self.repr {
                Repr::Os(code) => ErrorKind::from_errno(code),
                Repr::Simple(kind) | Repr::Custom(kind, _) => kind,
                Repr::Rejected(_) => ErrorKind::InvalidData,
            }
        }

        /// The completion that failed validation, if that is what this error reports
        /// ([`super::rejected_completion`]).
        pub(super) fn rejected_completion(&self) -> Option<&RejectedCompletion> {
            match &self.repr {
                Repr::Rejected(r) => Some(r),
                _ => None,
            }
        }
    }

    impl From<RejectedCompletion> for Error {
        fn from(rejected: RejectedCompletion) -> Self {
            Self { repr: Repr::Rejected(rejected) }
        }
    }

    impl From<ErrorKind> for Error {
        fn from(kind: ErrorKind) -> Self {
            Self { repr: Repr::Simple(kind) }
        }
    }

    impl fmt::Debug for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.repr {
                Repr::Os(code) => f.debug_struct("Os").field("code", code).finish(),
                Repr::Simple(kind) => f.debug_tuple("Kind").field(kind).finish(),
                Repr::Custom(kind, error) => {
                    f.debug_struct("Custom").field("kind", kind).field("error", error).finish()
                }
                Repr::Rejected(r) => f.debug_tuple("Rejected").field(r).finish(),
            }
        }
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.repr {
                Repr::Os(code) => write!(f, "errno {code} ({})", ErrorKind::from_errno(*code)),
                Repr::Simple(kind) => write!(f, "{kind}"),
                Repr::Custom(_, error) => write!(f, "{error}"),
                Repr::Rejected(r) => write!(f, "{r}"),
            }
        }
    }

    #[cfg(not(exitless_no_core_error))]
    impl core::error::Error for Error {}
}

#[cfg(all(test, not(feature = "std")))]
mod tests {
    use alloc::string::ToString;

    use super::{Error, ErrorKind};
    use crate::errno;

    #[test]
    fn the_stand_in_behaves_like_std_io_error() {
        let e = Error::from_raw_os_error(errno::ENOSPC);
        assert_eq!((e.raw_os_error(), e.kind()), (Some(errno::ENOSPC), ErrorKind::StorageFull));
        assert_eq!(Error::from_raw_os_error(errno::EIO).kind(), ErrorKind::Other);
        let e = Error::new(ErrorKind::InvalidInput, "slot 9 out of range");
        assert_eq!((e.raw_os_error(), e.kind()), (None, ErrorKind::InvalidInput));
        assert_eq!(e.to_string(), "slot 9 out of range");
        assert_eq!(Error::other(alloc::format!("x{}", 1)).kind(), ErrorKind::Other);
        assert_eq!(Error::from(ErrorKind::WriteZero).to_string(), "write zero");
    }
}

#[cfg(test)]
mod rejected_tests {
    use alloc::string::ToString;

    use super::{rejected_completion, Error, ErrorKind, RejectedCompletion, Reporter};
    use crate::errno;
    use crate::validate::Rejected;

    #[test]
    fn a_rejected_completion_is_its_own_error_and_no_errno() {
        let why = Rejected::TooLong { slot: 3, requested: 4096, reported: 8192 };
        let e = Error::from(RejectedCompletion::new(Reporter::Kernel, why));
        assert_eq!((e.kind(), e.raw_os_error()), (ErrorKind::InvalidData, None));
        let r = rejected_completion(&e).expect("recognized");
        assert_eq!((r.why(), r.reporter(), r.is_earlier()), (why, Reporter::Kernel, false));
        assert_eq!(
            e.to_string(),
            "rejected a completion from the kernel: completion for slot 3 reports 8192 bytes, but 4096 were requested"
        );
        let again = Error::from(RejectedCompletion::new(Reporter::Kernel, why).again());
        assert!(again
            .to_string()
            .starts_with("io_uring backend disabled: rejected a completion from the kernel"));
        assert!(matches!(rejected_completion(&again), Some(r) if r.is_earlier()));
        // Nothing else is one: not an errno, not another invalid-data error.
        assert!(rejected_completion(&Error::from_raw_os_error(errno::EIO)).is_none());
        assert!(rejected_completion(&Error::new(ErrorKind::InvalidData, "statx")).is_none());
        assert!(rejected_completion(&Error::from(ErrorKind::InvalidData)).is_none());
    }
}
