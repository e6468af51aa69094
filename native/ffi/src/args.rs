//! The only place raw pointers become Rust values: each helper checks for null
//! and states the contract the caller must keep.

use std::ffi::{c_char, CStr};
use std::sync::Mutex;

use exitless_seal::DataKey;

use crate::status::{FfiError, FfiResult};

/// # Safety
/// `ptr` is null or valid for reads of `len` bytes for the duration of the call.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{what} is null but its length is {len}")));
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes (function contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `ptr` is null or valid for writes of `len` bytes, not aliased, for the call.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize, what: &str) -> FfiResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{what} is null but its length is {len}")));
    }
    // SAFETY: non-null, and the caller promises `len` writable, unaliased bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// # Safety
/// `ptr` is null or a NUL-terminated string valid for the call.
pub(crate) unsafe fn path<'a>(ptr: *const c_char) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::invalid("path is null"));
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| FfiError::invalid("path is not valid UTF-8"))
}

/// # Safety
/// `ptr` is null or valid for reads of `len` bytes.
pub(crate) unsafe fn key(ptr: *const u8, len: usize) -> FfiResult<DataKey> {
    // SAFETY: forwarded contract.
    let raw = unsafe { bytes(ptr, len, "key") }?;
    DataKey::from_slice(raw).map_err(|_| FfiError::invalid(format!("key must be 32 bytes, got {len}")))
}

/// # Safety
/// `out` is null or valid for one write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, what: &str) -> FfiResult {
    if out.is_null() {
        return Err(FfiError::invalid(format!("output pointer {what} is null")));
    }
    // SAFETY: non-null and writable by the caller's contract; `write` drops nothing.
    unsafe { out.write(value) };
    Ok(())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while locked was already reported; the state machine inside stays valid.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
