//! The stream functions: sealed writers and readers on files, over the backend the
//! options choose.

use exitless_seal::DataKey;
use exitless_spill::{SpillOptions, SpillReader, SpillResult, SpillWriter, StreamStats};
use std::ffi::c_char;
use std::sync::atomic::AtomicU64;

use crate::args::{bytes, bytes_mut, key, path, put};
use crate::handle::{self, Handle};
use crate::options::{read_options, spill_options, stats, ExitlessOptions, ExitlessStats};
use crate::status::{guard, guard_secret, ExitlessStatus, FfiResult};

/// An open sealed writer (see the crate docs: calls racing `close` or `free` are
/// safe; another process's calls fail with `EXITLESS_ERR_WRONG_PROCESS`).
#[repr(transparent)]
pub struct ExitlessWriter(Handle<SpillWriter>);
/// An open sealed reader (as [`ExitlessWriter`]).
#[repr(transparent)]
pub struct ExitlessReader(Handle<SpillReader>);

/// Writer and reader streams open (not yet closed or freed).
pub(crate) static LIVE_WRITERS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LIVE_READERS: AtomicU64 = AtomicU64::new(0);

/// What the C ABI's generic stream calls need of a handle type: the stream it
/// wraps, the name its errors use, its live count and its counters.
trait StreamHandle {
    type Stream;
    const NAME: &'static str;
    fn live() -> &'static AtomicU64;
    /// The stream's counters; `closing`: after closing its file (through its backend).
    fn stats(stream: &mut Self::Stream, closing: bool) -> ExitlessStats;
}

impl StreamHandle for ExitlessWriter {
    type Stream = SpillWriter;
    const NAME: &'static str = "writer";
    fn live() -> &'static AtomicU64 {
        &LIVE_WRITERS
    }
    fn stats(w: &mut SpillWriter, closing: bool) -> ExitlessStats {
        if closing {
            w.close();
        }
        stats(w.stats(), w.backend_kind())
    }
}

impl StreamHandle for ExitlessReader {
    type Stream = SpillReader;
    const NAME: &'static str = "reader";
    fn live() -> &'static AtomicU64 {
        &LIVE_READERS
    }
    fn stats(r: &mut SpillReader, closing: bool) -> ExitlessStats {
        if closing {
            r.close();
        }
        stats(r.stats(), r.backend_kind())
    }
}

fn handle_of<H: StreamHandle>(ptr: *const H) -> *const Handle<H::Stream> {
    // Both handle types are transparent wrappers of their `Handle`.
    ptr.cast()
}

/// Runs `f` on the stream inside one call of its handle.
///
/// # Safety
/// `ptr` is null or a handle from its open call not freed before the call began.
unsafe fn with<H: StreamHandle, R>(
    ptr: *const H,
    f: impl FnOnce(&mut H::Stream) -> FfiResult<R>,
) -> FfiResult<R> {
    // SAFETY: forwarded contract.
    unsafe { handle::enter(handle_of(ptr), H::NAME) }?.with(f)
}

/// Opens a stream from the C arguments and publishes its handle in `*out`.
///
/// # Safety
/// As `exitless_writer_open`'s contract.
#[allow(clippy::too_many_arguments)]
unsafe fn open<H: StreamHandle>(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    context: *const u8,
    context_len: usize,
    options: *const ExitlessOptions,
    out: *mut *mut H,
    open: impl FnOnce(&str, &DataKey, &[u8], &SpillOptions) -> SpillResult<H::Stream>,
) -> ExitlessStatus {
    guard_secret(|| {
        // SAFETY: every pointer is checked for null, then used within the lengths the
        // caller's contract guarantees.
        let (path, key, context) =
            unsafe { (self::path(path)?, self::key(key, key_len)?, bytes(context, context_len, "context")?) };
        // SAFETY: null or readable by contract.
        let opts = spill_options(&unsafe { read_options(options) }?)?;
        let stream = open(path, &key, context, &opts)?;
        let raw = Handle::boxed(stream, H::NAME, H::stats, H::live());
        // SAFETY: `out` is null (refused) or writable by contract; `H` is a transparent
        // wrapper of `Handle<H::Stream>`.
        unsafe { put(out, raw.cast::<H>(), "out") }.inspect_err(|_| {
            // SAFETY: `raw` came from Handle::boxed just above and was never shared.
            unsafe { handle::free(raw) };
        })
    })
}

/// Closes a stream without freeing its handle.
///
/// # Safety
/// `ptr` is a handle not freed before this call began.
unsafe fn close<H: StreamHandle>(ptr: *const H) -> ExitlessStatus {
    guard_secret(|| {
        // SAFETY: forwarded contract.
        unsafe { handle::close(handle_of(ptr), H::NAME) }.map(drop)
    })
}

/// Closes and frees a stream's handle; null is a no-op.
///
/// # Safety
/// `ptr` is null or a handle from its open call, freed only once.
unsafe fn free<H: StreamHandle>(ptr: *mut H) {
    let _ = guard_secret(|| {
        // SAFETY: forwarded contract.
        unsafe { handle::free(handle_of(ptr).cast_mut()) };
        Ok(())
    });
}

/// Writes a stream's counters to `*out`.
///
/// # Safety
/// `ptr` is a handle not freed before this call began; `out` is writable.
unsafe fn stats_into<H: StreamHandle>(ptr: *const H, out: *mut ExitlessStats) -> ExitlessStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { handle::stats(handle_of(ptr), H::NAME) }?;
        // SAFETY: forwarded contract.
        unsafe { put(out, s, "out") }
    })
}

/// Creates (or truncates) `path`, mode 0600, and opens a sealed writer on it. A
/// symlink at `path` is refused (`EXITLESS_ERR_IO`, errno ELOOP), never followed.
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
    // SAFETY: forwarded contract.
    unsafe { open(path, key, key_len, context, context_len, options, out, SpillWriter::create) }
}

/// Appends `len` plaintext bytes.
///
/// # Safety
/// `writer` is a handle from `exitless_writer_open`, not freed before this call
/// began; `data` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_write(
    writer: *const ExitlessWriter,
    data: *const u8,
    len: usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let data = unsafe { bytes(data, len, "data") }?;
        // SAFETY: contract above.
        unsafe { with(writer, |w| Ok(w.write(data)?)) }
    })
}

/// Plaintext bytes written so far.
///
/// # Safety
/// `writer` is a handle not freed before this call began; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_tell(
    writer: *const ExitlessWriter,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let pos = unsafe { with(writer, |w| Ok(w.position())) }?;
        // SAFETY: contract above.
        unsafe { put(out, pos, "out") }
    })
}

/// Seals and writes the final segment (and fsyncs if asked): the stream is complete
/// only after this returns `EXITLESS_OK`. The handle stays valid until freed.
///
/// # Safety
/// `writer` is a handle not freed before this call began.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_finish(writer: *const ExitlessWriter) -> ExitlessStatus {
    // SAFETY: contract above.
    guard(|| unsafe { with(writer, |w| Ok(w.finish()?)) })
}

/// Closes a writer without freeing its handle: if it was not finished, the file is
/// left incomplete and never reads back as a whole stream (this is how an aborted
/// write ends). Safe while other threads are inside calls on the same handle: a call
/// in flight completes first; calls that start later get `EXITLESS_ERR_CLOSED`.
/// Closing twice is not an error. From another process: `EXITLESS_ERR_WRONG_PROCESS`,
/// and the stream is untouched.
///
/// # Safety
/// `writer` is a handle not freed before this call began.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_close(writer: *const ExitlessWriter) -> ExitlessStatus {
    // SAFETY: contract above.
    unsafe { close(writer) }
}

/// Closes (as `exitless_writer_close`) and frees a writer. Calls already inside the
/// handle finish safely; the handle must not be passed to any call that starts
/// after this one. In a process other than the one that opened it, only this
/// process's copy of the handle is released. Null is a no-op.
///
/// # Safety
/// `writer` is null or a handle from `exitless_writer_open`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_free(writer: *mut ExitlessWriter) {
    // SAFETY: contract above.
    unsafe { free(writer) }
}

/// Opens a sealed reader on `path`. Verifies the header and the final segment
/// first, so a truncated stream fails here, before any plaintext is returned. A
/// path that is not a regular file (a device, a FIFO) is `EXITLESS_ERR_FORMAT`.
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
    // SAFETY: forwarded contract.
    unsafe { open(path, key, key_len, context, context_len, options, out, SpillReader::open) }
}

/// Reads up to `len` bytes into `buf`; `*out_read` is 0 only at end of stream.
/// On error nothing is counted as read, and no unauthenticated byte is in `buf`.
///
/// # Safety
/// `reader` is a handle not freed before this call began; `buf` has `len` writable
/// bytes; `out_read` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_read(
    reader: *const ExitlessReader,
    buf: *mut u8,
    len: usize,
    out_read: *mut usize,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let buf = unsafe { bytes_mut(buf, len, "buf") }?;
        // SAFETY: contract above.
        let n = unsafe { with(reader, |r| Ok(r.read(buf)?)) }?;
        // SAFETY: contract above.
        unsafe { put(out_read, n, "out_read") }
    })
}

/// Moves the read position (`whence`: 0 start, 1 current, 2 end); `*out_pos` gets it.
///
/// # Safety
/// `reader` is a handle not freed before this call began; `out_pos` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_seek(
    reader: *const ExitlessReader,
    offset: i64,
    whence: i32,
    out_pos: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let pos = unsafe { with(reader, |r| Ok(r.seek(offset, whence)?)) }?;
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
/// `reader` is a handle not freed before this call began; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_tell(
    reader: *const ExitlessReader,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let pos = unsafe { with(reader, |r| Ok(r.position())) }?;
        // SAFETY: contract above.
        unsafe { put(out, pos, "out") }
    })
}

/// The plaintext length of the stream (its final segment is already authenticated).
///
/// # Safety
/// `reader` is a handle not freed before this call began; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_size(
    reader: *const ExitlessReader,
    out: *mut u64,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: contract above.
        let len = unsafe { with(reader, |r| Ok(r.plaintext_len())) }?;
        // SAFETY: contract above.
        unsafe { put(out, len, "out") }
    })
}

/// Closes a reader without freeing its handle; as `exitless_writer_close`.
///
/// # Safety
/// `reader` is a handle not freed before this call began.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_close(reader: *const ExitlessReader) -> ExitlessStatus {
    // SAFETY: contract above.
    unsafe { close(reader) }
}

/// Closes and frees a reader; as `exitless_writer_free`. Null is a no-op.
///
/// # Safety
/// `reader` is null or a handle from `exitless_reader_open`, freed only once.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_free(reader: *mut ExitlessReader) {
    // SAFETY: contract above.
    unsafe { free(reader) }
}

/// What the writer did so far; after `exitless_writer_close`, what it did in all
/// (the file's close included: one of `file_ops`, an exit on the OCALL path).
///
/// # Safety
/// `writer` is a handle not freed before this call began; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_writer_stats(
    writer: *const ExitlessWriter,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    // SAFETY: contract above.
    unsafe { stats_into(writer, out) }
}

/// What the reader did so far; after `exitless_reader_close`, what it did in all.
///
/// # Safety
/// `reader` is a handle not freed before this call began; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_reader_stats(
    reader: *const ExitlessReader,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    // SAFETY: contract above.
    unsafe { stats_into(reader, out) }
}

/// A C entry point on a path, for this crate's and for cdylibs built on it (the
/// benchmark library, `native/bench`): runs `body` on the path and the stream options
/// of `options` (null: the defaults), as [`exitless_unlink`] does; `*out`, if not
/// null, gets the [`ExitlessStats`] of what `body` returns. An error or a panic
/// becomes the status code and this library's thread-local last error. A cdylib that
/// links this crate has its own copy of that last error (and of the backend pool and
/// the runtime): its callers read `exitless_last_error_message` from that library.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` is null or readable; `out` is null or
/// writable. All only for the duration of the call.
pub unsafe fn path_stats_call(
    path: *const c_char,
    options: *const ExitlessOptions,
    out: *mut ExitlessStats,
    body: impl FnOnce(&str, &SpillOptions) -> SpillResult<StreamStats>,
) -> ExitlessStatus {
    guard(|| {
        // SAFETY: `path` and `options` as the contract above says.
        let (path, opts) = unsafe { (self::path(path)?, read_options(options)?) };
        let spill = spill_options(&opts)?;
        let kind = spill.backend.resolve()?;
        let s = body(path, &spill)?;
        if !out.is_null() {
            // SAFETY: not null, and writable by contract.
            unsafe { put(out, stats(s, kind), "out") }?;
        }
        Ok(())
    })
}

/// Deletes the file at `path` through a backend of `options`' kind, as a stream's
/// own file would be: on io_uring, with `IORING_OP_UNLINKAT` on a pooled ring (no
/// exit); on the OCALL path, one modeled exit. A symlink is removed, not followed; a
/// directory is refused (EISDIR). `*out` (if not null) gets what the backend did.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` null or readable; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn exitless_unlink(
    path: *const c_char,
    options: *const ExitlessOptions,
    out: *mut ExitlessStats,
) -> ExitlessStatus {
    // SAFETY: the same contract.
    unsafe { path_stats_call(path, options, out, exitless_spill::unlink) }
}
