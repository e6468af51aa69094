//! A stream's file: a plain descriptor whose whole life (open, stat, truncate,
//! close, unlink) runs through the stream's backend, so on io_uring it makes no
//! exit, and on the OCALL path each step is the exit it is in an enclave.

use std::ffi::CString;

use exitless_io::{Backend, FileStat, FileType, RawFd};

use crate::error::{Cause, Op, SpillError, SpillResult};
use crate::memory::DIRECT_ALIGN;
use crate::pool::checkout_any;
use crate::stats::StreamStats;
use crate::SpillOptions;

/// `path` as the kernel takes it.
pub(crate) fn c_path(path: &str) -> SpillResult<CString> {
    CString::new(path).map_err(|_| SpillError::invalid(Some(path), "a path cannot hold a NUL byte"))
}

/// Opens `path` through `backend`, with O_DIRECT if `direct` (then the segment
/// size must be whole blocks). A writer creates or truncates the file, mode 0600,
/// and never follows a symlink at `path` (ELOOP): one planted there would make it
/// truncate whatever the link names. Returns the descriptor.
pub(crate) fn open(
    backend: &mut dyn Backend,
    path: &str,
    write: bool,
    direct: bool,
    segment_size: u32,
) -> SpillResult<RawFd> {
    if direct && u64::from(segment_size) % DIRECT_ALIGN != 0 {
        return Err(SpillError::invalid(
            Some(path),
            "direct IO needs a segment size that is a multiple of 4096",
        ));
    }
    let c = c_path(path)?;
    let mut flags = if write {
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW
    } else {
        libc::O_RDONLY
    };
    if direct {
        flags |= libc::O_DIRECT;
    }
    let op = if write { Op::Create } else { Op::Open };
    backend.open(&c, flags, 0o600).map_err(|e| SpillError::io(e, op, path))
}

/// Creates (or truncates) `path` through `backend` as a sealed writer opens its
/// file: mode 0600, a symlink at `path` refused (ELOOP), O_DIRECT if `direct` (then
/// `segment_size` must be whole 4 KiB blocks). Public for code that drives a pooled
/// backend itself (the benchmarks' plaintext baseline).
pub fn create(backend: &mut dyn Backend, path: &str, direct: bool, segment_size: u32) -> SpillResult<RawFd> {
    open(backend, path, true, direct, segment_size)
}

/// Opens `path` for reading through `backend`. Not O_NONBLOCK, though a FIFO's
/// open then waits for a writer: io_uring would fail a regular file's reads with
/// EAGAIN rather than wait for the disk.
pub(crate) fn open_for_reading(backend: &mut dyn Backend, path: &str) -> SpillResult<RawFd> {
    let c = c_path(path)?;
    backend.open(&c, libc::O_RDONLY, 0).map_err(|e| SpillError::io(e, Op::Open, path))
}

/// The length of the regular file open at `fd`: a directory is EISDIR; a device
/// or a FIFO is no sealed stream (reading one could block or never end).
pub(crate) fn regular_len(backend: &mut dyn Backend, fd: RawFd, path: &str) -> SpillResult<u64> {
    match backend.stat(fd) {
        Err(e) => Err(SpillError::io(e, Op::Stat, path)),
        Ok(FileStat { kind: FileType::Directory, .. }) => {
            Err(SpillError::io(std::io::Error::from_raw_os_error(libc::EISDIR), Op::Open, path))
        }
        Ok(FileStat { kind: FileType::Other, .. }) => Err(SpillError::format(path, Cause::NotRegularFile)),
        Ok(FileStat { len, .. }) => Ok(len),
    }
}

/// Closes `fd` through `backend`; with a plain `close` if the backend has rejected
/// a completion (it submits nothing more), so the descriptor never leaks.
pub fn close(backend: &mut dyn Backend, fd: RawFd) -> std::io::Result<()> {
    if backend.counters().completions_rejected > 0 {
        // SAFETY: close takes no pointers; `fd` is the stream's own descriptor, which
        // nothing closed yet (the backend refuses work once it rejected a completion).
        return match unsafe { libc::close(fd) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        };
    }
    backend.file_op(exitless_io::FileOp::Close(fd)).map(drop)
}

/// Deletes the file at `path` through a backend of `options`' kind (a pooled one
/// when there is one idle), as a stream's own file would be: on io_uring with no
/// exit. Returns what the backend did. A symlink is removed, never followed; a
/// directory is refused (EISDIR).
pub fn unlink(path: &str, options: &SpillOptions) -> SpillResult<StreamStats> {
    let kind = options.backend.resolve()?;
    let c = c_path(path)?;
    let mut backend = checkout_any(kind, options)?;
    let base = backend.get().counters();
    backend
        .get()
        .file_op(exitless_io::FileOp::Unlink(&c))
        .map_err(|e| SpillError::io(e, Op::Delete, path))?;
    Ok(StreamStats { io: backend.peek().counters().since(&base), ..StreamStats::default() })
}
