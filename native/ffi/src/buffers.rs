//! Whole buffers sealed in memory, key-less inspection, and which backends work here.

use std::ffi::c_char;

use exitless_seal::{Layout, HEADER_LEN, MAX_ENVELOPE_LEN, V2_FIXED_LEN};

use crate::args::{bytes, bytes_mut, key, path, put};
use crate::file;
use crate::options::{params, read_options, ExitlessFileInfo, ExitlessOptions};
use crate::status::{guard, guard_secret, ExitlessStatus, FfiError};

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
    guard_secret(|| {
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
    guard_secret(|| {
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

/// The `IORING_FEAT_*` bits (as in `<linux/io_uring.h>`) of an SQPOLL ring on this
/// machine, into `*out`. `EXITLESS_ERR_IO` with the reason when io_uring does not work.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_uring_features(out: *mut u32) -> ExitlessStatus {
    guard(|| {
        let bits = exitless_io::probe::uring_features()
            .map_err(|why| FfiError::new(crate::status::EXITLESS_ERR_IO, why))?;
        // SAFETY: contract above.
        unsafe { put(out, bits, "out") }
    })
}

/// The OCALL cost model in force for new streams: cycles per modeled exit
/// (`EXITLESS_OCALL_CYCLES`, 8,200 by default), whether transfers above 16 KiB
/// cost three exits (`EXITLESS_OCALL_TRIPLE`), and the TSC calibration that turns
/// cycles into time (`calibrated` = 0: no TSC, an assumed rate).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitlessOcallModel {
    /// Cycles charged per modeled exit.
    pub cycles_per_exit: u64,
    /// Non-zero when a pread/pwrite above 16 KiB counts three exits.
    pub triple_above_16k: u8,
    /// Non-zero when `tsc_ticks_per_ns` was measured.
    pub calibrated: u8,
    /// TSC ticks per nanosecond.
    pub tsc_ticks_per_ns: f64,
    /// Modeled nanoseconds per exit on this machine.
    pub ns_per_exit: f64,
}

/// The OCALL cost model new streams use (see [`ExitlessOcallModel`]).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_ocall_model(out: *mut ExitlessOcallModel) -> ExitlessStatus {
    guard(|| {
        let model = exitless_io::OcallModel::from_env();
        let tsc = exitless_io::model::calibration();
        let facts = ExitlessOcallModel {
            cycles_per_exit: model.cycles_per_exit,
            triple_above_16k: u8::from(model.triple_above.is_some()),
            calibrated: u8::from(tsc.measured),
            tsc_ticks_per_ns: tsc.ticks_per_ns,
            ns_per_exit: model.ns_per_exit(),
        };
        // SAFETY: contract above.
        unsafe { put(out, facts, "out") }
    })
}

/// Releases pooled backends (io_uring rings with their buffers and SQPOLL
/// attachment, switchless worker threads) and the trusted chunk buffers kept for
/// parallel sealing (wiped). Streams still open keep theirs.
#[no_mangle]
pub extern "C" fn exitless_release_backends() {
    exitless_spill::pool::clear_pool();
}

/// What the process holds for its streams (leak checks: once every handle is
/// freed and `exitless_release_backends` has run, every count is zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitlessResources {
    /// Writer handles opened and not yet freed.
    pub writers: u64,
    /// Reader handles opened and not yet freed.
    pub readers: u64,
    /// IO backends alive: in use by a stream, or idle in the pool.
    pub backends: u64,
    /// Of those, idle in the pool.
    pub pooled_backends: u64,
    /// Untrusted memory regions alive (backend buffers, bounce buffers).
    pub untrusted_regions: u64,
    /// Bytes of untrusted memory alive.
    pub untrusted_bytes: u64,
    /// Bytes of trusted chunk buffers kept for parallel sealing (at most 16 MiB).
    pub trusted_pool_bytes: u64,
}

/// Counts of live handles, backends and buffers, into `*out`.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_resources(out: *mut ExitlessResources) -> ExitlessStatus {
    guard(|| {
        use std::sync::atomic::Ordering::Relaxed;
        let r = exitless_spill::resources();
        let facts = ExitlessResources {
            writers: crate::streams::LIVE_WRITERS.load(Relaxed),
            readers: crate::streams::LIVE_READERS.load(Relaxed),
            backends: r.backends as u64,
            pooled_backends: r.pooled_backends as u64,
            untrusted_regions: r.untrusted_regions as u64,
            untrusted_bytes: r.untrusted_bytes as u64,
            trusted_pool_bytes: r.trusted_pool_bytes as u64,
        };
        // SAFETY: contract above.
        unsafe { put(out, facts, "out") }
    })
}
