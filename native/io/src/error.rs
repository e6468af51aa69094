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

#[cfg(feature = "std")]
pub use std::io::{Error, ErrorKind};

#[cfg(not(feature = "std"))]
pub use core_io::{Error, ErrorKind};

/// `Result` with this crate's [`Error`] (`std::io::Result` with `std`).
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(not(feature = "std"))]
mod core_io {
    use alloc::boxed::Box;
    use core::fmt;

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
            }
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
            }
        }
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.repr {
                Repr::Os(code) => write!(f, "errno {code} ({})", ErrorKind::from_errno(*code)),
                Repr::Simple(kind) => write!(f, "{kind}"),
                Repr::Custom(_, error) => write!(f, "{error}"),
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
