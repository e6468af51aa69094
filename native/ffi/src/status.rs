//! Status codes, the thread-local last error, and the guard that keeps panics
//! from crossing the ABI.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use exitless_seal::ErrorKind;

/// Status code every function returns; 0 is success.
pub type ExitlessStatus = i32;

/// Success.
pub const EXITLESS_OK: ExitlessStatus = 0;
/// A bad argument: null pointer, wrong key length, unknown algorithm, bad mode.
pub const EXITLESS_ERR_INVALID_ARGUMENT: ExitlessStatus = 1;
/// An operating-system IO error; `exitless_last_error_errno` has the errno.
pub const EXITLESS_ERR_IO: ExitlessStatus = 2;
/// Not a sealed stream, or an unsupported version or parameter.
pub const EXITLESS_ERR_FORMAT: ExitlessStatus = 3;
/// Authentication failed: tampered, truncated, reordered, wrong key or context.
pub const EXITLESS_ERR_INTEGRITY: ExitlessStatus = 4;
/// The handle was closed, or failed earlier and can no longer be used.
pub const EXITLESS_ERR_CLOSED: ExitlessStatus = 5;
/// A bug: a Rust panic was caught at the ABI boundary.
pub const EXITLESS_ERR_PANIC: ExitlessStatus = 6;
/// The handle belongs to another process (a forked child used its parent's
/// stream); nothing was done, and the stream stays the opener's.
pub const EXITLESS_ERR_WRONG_PROCESS: ExitlessStatus = 7;
/// The kernel returned a completion that fails validation (a forged or corrupt
/// io_uring completion, or switchless worker result: a stale or unknown slot, more
/// bytes than were requested, an errno no file operation returns): treat the host
/// as hostile. Nothing of it was used, and the stream is done (a writer's file is
/// incomplete and never reads back whole); the message says which completion and
/// where. No errno (`exitless_last_error_errno` is 0): this is no disk failure.
pub const EXITLESS_ERR_REJECTED_COMPLETION: ExitlessStatus = 8;

/// An error on its way to the C caller.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: ExitlessStatus,
    pub errno: i32,
    pub message: String,
}

impl FfiError {
    pub(crate) fn new(status: ExitlessStatus, message: impl Into<String>) -> Self {
        Self { status, errno: 0, message: message.into() }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(EXITLESS_ERR_INVALID_ARGUMENT, message)
    }
    /// A format-level error, naming the path.
    pub(crate) fn seal(err: &exitless_seal::Error, path: &str) -> Self {
        let status = match err.kind() {
            ErrorKind::Format => EXITLESS_ERR_FORMAT,
            ErrorKind::Integrity => EXITLESS_ERR_INTEGRITY,
            ErrorKind::InvalidArgument => EXITLESS_ERR_INVALID_ARGUMENT,
        };
        Self::new(status, format!("{path}: {err}"))
    }
}

impl From<exitless_spill::SpillError> for FfiError {
    fn from(e: exitless_spill::SpillError) -> Self {
        use exitless_spill::SpillError as E;
        let status = match &e {
            E::Format { .. } => EXITLESS_ERR_FORMAT,
            E::Integrity { .. } => EXITLESS_ERR_INTEGRITY,
            E::Io { .. } => EXITLESS_ERR_IO,
            E::RejectedCompletion { .. } => EXITLESS_ERR_REJECTED_COMPLETION,
            E::InvalidArgument { .. } => EXITLESS_ERR_INVALID_ARGUMENT,
            E::Closed { .. } => EXITLESS_ERR_CLOSED,
            // A class this ABI does not know yet: an IO failure of some kind.
            _ => EXITLESS_ERR_IO,
        };
        Self { status, errno: e.errno().unwrap_or(0), message: e.to_string() }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<(CString, i32)> = RefCell::new((CString::default(), 0));
}

fn set_last_error(message: &str, errno: i32) {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = (message, errno));
}

/// Runs `body`, turning its error or panic into a status code plus the last error.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> ExitlessStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => EXITLESS_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message, e.errno);
            e.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"), 0);
            EXITLESS_ERR_PANIC
        }
    }
}

/// [`guard`] for calls that handle key material (they take a data key and derive
/// stream keys, or drop a stream and its key schedule): afterwards, the stack below the caller, where the call's frames
/// held copies of the key, its HKDF state and the expanded stream key (moved-from
/// values no destructor wipes), is overwritten with zeros. Best effort: see
/// docs/HARDENING.md, "Key hygiene".
pub(crate) fn guard_secret(body: impl FnOnce() -> FfiResult) -> ExitlessStatus {
    let status = guard(body);
    exitless_seal::scrub_stack();
    status
}

/// The message of the last error on this thread (empty if none). Valid until the
/// next exitless call on the same thread; never null; never contains key bytes.
#[no_mangle]
pub extern "C" fn exitless_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().0.as_ptr())
}

/// The errno of the last `EXITLESS_ERR_IO` on this thread (0 if none).
#[no_mangle]
pub extern "C" fn exitless_last_error_errno() -> i32 {
    LAST_ERROR.with(|e| e.borrow().1)
}
