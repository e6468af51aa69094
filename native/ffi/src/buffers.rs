//! Whole buffers sealed in memory, key-less inspection, and which backends work here.

use std::ffi::c_char;

use exitless_seal::{Layout, HEADER_LEN, MAX_ENVELOPE_LEN, V2_FIXED_LEN};

use crate::args::{bytes, bytes_mut, key, path, put};
use crate::file;
use crate::options::{params, read_options, ExitlessFileInfo, ExitlessOptions};
use crate::status::{guard, ExitlessStatus, FfiError};

/// Header facts of `path` without a key: never authenticated, for display only.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_inspect(path: *const c_char, out: *mut ExitlessFileInfo) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let i = exitless_spill::inspect(unsafe { self::path(path) }?)?;
        let mut envelope = [0u8; crate::options::EXITLESS_MAX_ENVELOPE_LEN];
        let env = i.envelope.as_deref().unwrap_or_default();
        envelope[..env.len()].copy_from_slice(env);
        let info = ExitlessFileInfo {
            envelope,
            envelope_len: env.len() as u32,
            header_len: i.header.len() as u32,
            version: i.header.version(),
            algorithm: i.header.algorithm().id(),
            key_id: i.header.key_id().0,
            segment_size: i.header.segment_size(),
            file_len: i.file_len,
            segments: i.geometry.segments,
            plaintext_len: i.geometry.plaintext_len,
        };
        // SAFETY: contract above.
        unsafe { put(out, info, "out") }
    })
}

/// The sealed length of a plaintext of `plaintext_len` bytes at `segment_size`.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_sealed_len(
    plaintext_len: u64,
    segment_size: u32,
    out: *mut u64,
) -> ExitlessStatus {
    // SAFETY: forwarded contract.
    unsafe { exitless_sealed_len_envelope(plaintext_len, segment_size, 0, out) }
}

/// The sealed length of a plaintext of `plaintext_len` bytes at `segment_size` with a
/// key envelope of `envelope_len` bytes in the header (format version 2; 0: version 1).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_sealed_len_envelope(
    plaintext_len: u64,
    segment_size: u32,
    envelope_len: usize,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        let header_len = match envelope_len {
            0 => HEADER_LEN,
            n if n <= MAX_ENVELOPE_LEN => V2_FIXED_LEN + n,
            n => return Err(FfiError::invalid(format!("envelope is {n} bytes; at most {MAX_ENVELOPE_LEN}"))),
        };
        let layout = Layout::new(segment_size, header_len).map_err(|e| FfiError::invalid(e.to_string()))?;
        let len = layout.sealed_len(plaintext_len).map_err(|e| FfiError::invalid(e.to_string()))?;
        // SAFETY: contract above.
        unsafe { put(out, len, "out") }
    })
}

/// Seals `plaintext` in memory into `out` (`out_cap` ≥ `exitless_sealed_len`); the
/// result is a complete sealed file of `*out_len` bytes.
///
/// # Safety
/// Each pointer is valid for its length (or null with length 0); `options` is null
/// or readable; `out_len` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_seal_buffer(
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    options: *const ExitlessOptions,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above; each pointer is checked, then used within its length.
        let (key, context, plaintext, out) = unsafe {
            (
                self::key(key, key_len)?,
                bytes(context, context_len, "context")?,
                bytes(plaintext, plaintext_len, "plaintext")?,
                bytes_mut(out, out_cap, "out")?,
            )
        };
        // SAFETY: null or readable by contract.
        let opts = unsafe { read_options(options) }?;
        let n = file::seal_into(&key, &params(&opts)?, context, plaintext, out)?;
        // SAFETY: contract above.
        unsafe { put(out_len, n, "out_len") }
    })
}

/// Opens a sealed file held in memory into `out` (`out_cap` ≥ its plaintext length).
/// Writes nothing to `*out_len` and leaves no plaintext in `out` unless every
/// segment authenticates.
///
/// # Safety
/// Each pointer is valid for its length (or null with length 0); `out_len` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_open_buffer(
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    sealed: *const u8,
    sealed_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above; each pointer is checked, then used within its length.
        let (key, context, sealed, out) = unsafe {
            (
                self::key(key, key_len)?,
                bytes(context, context_len, "context")?,
                bytes(sealed, sealed_len, "sealed")?,
                bytes_mut(out, out_cap, "out")?,
            )
        };
        let n = file::open_into(&key, context, sealed, out)?;
        // SAFETY: contract above.
        unsafe { put(out_len, n, "out_len") }
    })
}

/// Whether the io_uring backend works here. Returns `EXITLESS_OK`, or
/// `EXITLESS_ERR_IO` with the reason as the last error message (ENOSYS, EPERM from
/// seccomp or kernel.io_uring_disabled, no SQPOLL privilege).
#[no_mangle]
pub extern "C" fn exitless_uring_available() -> ExitlessStatus {
    guard(|| {
        exitless_io::probe::uring_availability()
            .map_err(|why| FfiError::new(crate::status::EXITLESS_ERR_IO, why))
    })
}

/// Releases pooled backends (io_uring rings with their buffers and SQPOLL
/// attachment, switchless worker threads). Streams still open keep theirs.
#[no_mangle]
pub extern "C" fn exitless_release_backends() {
    exitless_spill::options::clear_pool();
}
