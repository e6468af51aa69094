//! exitless-bench: the benchmark drivers and their C entry points, in a library of
//! their own (`libexitless_bench.so`), so that no wheel and no product library
//! carries them. `exitless_tools` (python/exitless_tools, a checkout's tools, not
//! part of the wheel) loads it with cffi in ABI mode; `make` builds it.
//!
//! Map of the crate:
//! - [`drivers`]: the drivers, [`sealed_write`](drivers::sealed_write),
//!   [`sealed_read`](drivers::sealed_read) and [`plain_write`](drivers::plain_write):
//!   a sealed stream and a plaintext one with the same IO pattern, data made natively
//!   so no caller overhead is measured (`examples/scaling.rs` uses them too).
//! - [`exitless_bench_write`], [`exitless_bench_read`]: the drivers behind the C
//!   ABI, with exitless-ffi's [`ExitlessOptions`] and [`ExitlessStats`].
//!
//! The library links exitless-ffi (an rlib), so it exports exitless-ffi's C functions
//! too, over state of its own: its own thread-local last error, its own backend pool
//! and runtime (exitless-spill's, linked in again). A caller reads the error of a
//! bench call with this library's `exitless_last_error_message` (and
//! `exitless_last_error_errno`), not the product's, and releases the backends the
//! drivers pooled with this library's `exitless_release_backends`.

use std::ffi::c_char;

use exitless_ffi::path_stats_call;
pub use exitless_ffi::{ExitlessOptions, ExitlessStats, ExitlessStatus};

pub mod drivers;

/// Writes `total` bytes to `path` as a sealed stream (`seal` ≠ 0, in `chunk`-byte
/// writes) or as plaintext with the same IO pattern (`seal` = 0), with data made
/// natively. `*out` (if not null) gets the stream's counters. On failure, this
/// library's `exitless_last_error_message` says why.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` null or readable; `out` null or
/// writable. All only for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn exitless_bench_write(
    path: *const c_char,
    options: *const ExitlessOptions,
    total: u64,
    chunk: usize,
    seal: u8,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    // SAFETY: the same contract.
    unsafe {
        path_stats_call(path, options, out, |path, spill| {
            if seal != 0 {
                drivers::sealed_write(path, spill, total, chunk)
            } else {
                drivers::plain_write(path, spill, total)
            }
        })
    }
}

/// Reads a stream written by `exitless_bench_write` (sealed) to the end in
/// `chunk`-byte reads. `*out` (if not null) gets the stream's counters.
///
/// # Safety
/// As for `exitless_bench_write`.
#[no_mangle]
pub unsafe extern "C" fn exitless_bench_read(
    path: *const c_char,
    options: *const ExitlessOptions,
    chunk: usize,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    // SAFETY: the same contract.
    unsafe { path_stats_call(path, options, out, |path, spill| drivers::sealed_read(path, spill, chunk)) }
}
