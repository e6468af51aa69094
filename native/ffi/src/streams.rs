//! The stream functions: sealed writers and readers on files, over the backend the
//! options choose.

use exitless_spill::{SpillReader, SpillWriter};
use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::args::{bytes, bytes_mut, handle, key, lock, path, put};
use crate::options::{read_options, spill_options, stats, ExitlessOptions, ExitlessStats};
use crate::status::{guard, guard_secret, ExitlessStatus};

/// An open sealed writer.
pub struct ExitlessWriter(Mutex<SpillWriter>);
/// An open sealed reader.
pub struct ExitlessReader(Mutex<SpillReader>);

/// Writer and reader handles not yet freed.
pub(crate) static LIVE_WRITERS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LIVE_READERS: AtomicU64 = AtomicU64::new(0);

/// Creates (or truncates) `path`, mode 0600, and opens a sealed writer on it.
///
/// # Safety
/// `path` is a NUL-terminated string; `key` has `key_len` readable bytes; `context`
/// has `context_len` readable bytes (or is null with 0); `options` is null (defaults)
/// or readable; `out` is writable. All only for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_open(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    options: *const ExitlessOptions,
    out: *mut *mut ExitlessWriter,
) -> ExitlessStatus {
    guard_secret(|| {
        // SAFETY: every pointer is checked for null, then used within the lengths the
        // caller's contract above guarantees.
        let (path, key, context) =
            unsafe { (self::path(path)?, self::key(key, key_len)?, bytes(context, context_len, "context")?) };
        // SAFETY: null or readable by contract.
        let opts = spill_options(&unsafe { read_options(options) }?)?;
        let writer = SpillWriter::create(path, &key, context, &opts)?;
        let boxed = Box::into_raw(Box::new(ExitlessWriter(Mutex::new(writer))));
        LIVE_WRITERS.fetch_add(1, Relaxed);
        // SAFETY: `out` is writable by contract; on failure we free what we made.
        unsafe { put(out, boxed, "out") }.inspect_err(|_| {
            // SAFETY: `boxed` came from Box::into_raw just above and was not shared.
            drop(unsafe { Box::from_raw(boxed) });
            LIVE_WRITERS.fetch_sub(1, Relaxed);
        })
    })
}

/// Appends `len` plaintext bytes.
///
/// # Safety
/// `writer` is a live handle from `exitless_writer_open`; `data` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_write(
    writer: *const ExitlessWriter,
    data: *const u8,
    len: usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let (w, data) = unsafe { (handle(writer, "writer")?, bytes(data, len, "data")?) };
        Ok(lock(&w.0).write(data)?)
    })
}

/// Plaintext bytes written so far.
///
/// # Safety
/// `writer` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_tell(
    writer: *const ExitlessWriter,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let w = unsafe { handle(writer, "writer") }?;
        let pos = lock(&w.0).position();
        // SAFETY: contract above.
        unsafe { put(out, pos, "out") }
    })
}

/// Seals and writes the final segment (and fsyncs if asked): the stream is complete
/// only after this returns `EXITLESS_OK`. The handle stays valid until freed.
///
/// # Safety
/// `writer` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_finish(writer: *const ExitlessWriter) -> ExitlessStatus {
    // SAFETY: contract above.
    guard(|| Ok(lock(&unsafe { handle(writer, "writer") }?.0).finish()?))
}

/// Frees a writer. If it was not finished, the file is left incomplete: it will
/// never read back as a whole stream (this is how an aborted write ends). Null is a no-op.
///
/// # Safety
/// `writer` is null or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_free(writer: *mut ExitlessWriter) {
    if !writer.is_null() {
        let _ = guard_secret(|| {
            // SAFETY: the handle came from Box::into_raw in exitless_writer_open and the
            // caller gives up its last use here.
            drop(unsafe { Box::from_raw(writer) });
            LIVE_WRITERS.fetch_sub(1, Relaxed);
            Ok(())
        });
    }
}

/// Opens a sealed reader on `path`. Verifies the header and the final segment
/// first, so a truncated stream fails here, before any plaintext is returned.
///
/// # Safety
/// As for `exitless_writer_open` (`options`: only backend, queue depth, direct
/// and ocall cycles apply; the header gives the rest).
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_open(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    options: *const ExitlessOptions,
    out: *mut *mut ExitlessReader,
) -> ExitlessStatus {
    guard_secret(|| {
        // SAFETY: pointers checked for null and used within the contract's lengths.
        let (path, key, context) =
            unsafe { (self::path(path)?, self::key(key, key_len)?, bytes(context, context_len, "context")?) };
        // SAFETY: null or readable by contract.
        let opts = spill_options(&unsafe { read_options(options) }?)?;
        let reader = SpillReader::open(path, &key, context, &opts)?;
        let boxed = Box::into_raw(Box::new(ExitlessReader(Mutex::new(reader))));
        LIVE_READERS.fetch_add(1, Relaxed);
        // SAFETY: `out` is writable by contract; on failure we free what we made.
        unsafe { put(out, boxed, "out") }.inspect_err(|_| {
            // SAFETY: `boxed` came from Box::into_raw just above and was not shared.
            drop(unsafe { Box::from_raw(boxed) });
            LIVE_READERS.fetch_sub(1, Relaxed);
        })
    })
}

/// Reads up to `len` bytes into `buf`; `*out_read` is 0 only at end of stream.
/// On error nothing is counted as read, and no unauthenticated byte is in `buf`.
///
/// # Safety
/// `reader` is a live handle; `buf` has `len` writable bytes; `out_read` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_read(
    reader: *const ExitlessReader,
    buf: *mut u8,
    len: usize,
    out_read: *mut usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let (r, buf) = unsafe { (handle(reader, "reader")?, bytes_mut(buf, len, "buf")?) };
        let n = lock(&r.0).read(buf)?;
        // SAFETY: contract above.
        unsafe { put(out_read, n, "out_read") }
    })
}

/// Moves the read position (`whence`: 0 start, 1 current, 2 end); `*out_pos` gets it.
///
/// # Safety
/// `reader` is a live handle; `out_pos` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_seek(
    reader: *const ExitlessReader,
    offset: i64,
    whence: i32,
    out_pos: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let r = unsafe { handle(reader, "reader") }?;
        let pos = lock(&r.0).seek(offset, whence)?;
        if !out_pos.is_null() {
            // SAFETY: non-null and writable by contract.
            unsafe { put(out_pos, pos, "out_pos") }?;
        }
        Ok(())
    })
}

/// The current read position.
///
/// # Safety
/// `reader` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_tell(
    reader: *const ExitlessReader,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let pos = lock(&unsafe { handle(reader, "reader") }?.0).position();
        // SAFETY: contract above.
        unsafe { put(out, pos, "out") }
    })
}

/// The plaintext length of the stream (its final segment is already authenticated).
///
/// # Safety
/// `reader` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_size(
    reader: *const ExitlessReader,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let len = lock(&unsafe { handle(reader, "reader") }?.0).plaintext_len();
        // SAFETY: contract above.
        unsafe { put(out, len, "out") }
    })
}

/// Frees a reader. Null is a no-op.
///
/// # Safety
/// `reader` is null or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_free(reader: *mut ExitlessReader) {
    if !reader.is_null() {
        let _ = guard_secret(|| {
            // SAFETY: the handle came from Box::into_raw in exitless_reader_open and the
            // caller gives up its last use here.
            drop(unsafe { Box::from_raw(reader) });
            LIVE_READERS.fetch_sub(1, Relaxed);
            Ok(())
        });
    }
}

/// What the writer did so far.
///
/// # Safety
/// `writer` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_stats(
    writer: *const ExitlessWriter,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let w = lock(&unsafe { handle(writer, "writer") }?.0);
        let s = stats(w.stats(), w.backend_kind());
        drop(w);
        // SAFETY: contract above.
        unsafe { put(out, s, "out") }
    })
}

/// What the reader did so far.
///
/// # Safety
/// `reader` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_stats(
    reader: *const ExitlessReader,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let r = lock(&unsafe { handle(reader, "reader") }?.0);
        let s = stats(r.stats(), r.backend_kind());
        drop(r);
        // SAFETY: contract above.
        unsafe { put(out, s, "out") }
    })
}

/// Benchmark driver: writes `total` bytes to `path` as a sealed stream (`seal` ≠ 0,
/// in `chunk`-byte writes) or as plaintext with the same IO pattern (`seal` = 0),
/// with data generated natively. `*out` gets the stream's counters.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` null or readable; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_bench_write(
    path: *const c_char,
    options: *const ExitlessOptions,
    total: u64,
    chunk: usize,
    seal: u8,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let (path, opts) = unsafe { (self::path(path)?, read_options(options)?) };
        let spill = spill_options(&opts)?;
        let kind = spill.backend.resolve()?;
        let s = if seal != 0 {
            exitless_spill::bench::sealed_write(path, &spill, total, chunk)?
        } else {
            exitless_spill::bench::plain_write(path, &spill, total)?
        };
        // SAFETY: contract above.
        unsafe { put(out, stats(s, kind), "out") }
    })
}

/// Benchmark driver: reads a stream written by `exitless_bench_write` (sealed) to
/// the end in `chunk`-byte reads. `*out` gets the stream's counters.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` null or readable; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_bench_read(
    path: *const c_char,
    options: *const ExitlessOptions,
    chunk: usize,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let (path, opts) = unsafe { (self::path(path)?, read_options(options)?) };
        let spill = spill_options(&opts)?;
        let kind = spill.backend.resolve()?;
        let s = exitless_spill::bench::sealed_read(path, &spill, chunk)?;
        // SAFETY: contract above.
        unsafe { put(out, stats(s, kind), "out") }
    })
}
