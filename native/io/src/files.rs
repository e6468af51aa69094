//! File-lifecycle operations ([`FileOp`]) as plain system calls, for the backends
//! that make them that way (sync, ocall, switchless, null). Each is one call, so
//! one exit inside an enclave; the caller counts and models it.

use std::io;

use crate::backend::{Counters, FileOp, FileOpOutput, FileStat, FileType};

/// Makes `op` as one system call (EINTR retried, except for close, which must not
/// be retried on Linux: the descriptor is gone either way).
pub(crate) fn syscall(op: FileOp<'_>) -> io::Result<FileOpOutput> {
    loop {
        match once(op) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !matches!(op, FileOp::Close(_)) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(FileOpOutput::Done),
            other => return other,
        }
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn once(op: FileOp<'_>) -> io::Result<FileOpOutput> {
    Ok(match op {
        FileOp::Open { path, flags, mode } => {
            // SAFETY: `path` is a NUL-terminated string borrowed for the call.
            let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
            FileOpOutput::Fd(check(fd)?)
        }
        FileOp::Close(fd) => {
            // SAFETY: no pointer; the kernel checks the descriptor.
            check(unsafe { libc::close(fd) })?;
            FileOpOutput::Done
        }
        FileOp::Unlink(path) => {
            // SAFETY: `path` is a NUL-terminated string borrowed for the call.
            check(unsafe { libc::unlink(path.as_ptr()) })?;
            FileOpOutput::Done
        }
        FileOp::Stat(fd) => {
            let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
            // SAFETY: `st` is a `stat` buffer on this frame, valid for the kernel to fill.
            check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
            // SAFETY: zero-initialised, then filled in by a successful fstat.
            let st = unsafe { st.assume_init() };
            FileOpOutput::Stat(FileStat {
                kind: FileType::from_mode(st.st_mode),
                len: st.st_size.max(0) as u64,
            })
        }
        FileOp::Truncate(fd, len) => {
            // SAFETY: no pointer; the kernel checks the descriptor and length.
            check(unsafe { libc::ftruncate(fd, off(len)?) })?;
            FileOpOutput::Done
        }
        FileOp::Allocate(fd, offset, len) => {
            // SAFETY: no pointer; the kernel checks the descriptor and range.
            check(unsafe { libc::fallocate(fd, 0, off(offset)?, off(len)?) })?;
            FileOpOutput::Done
        }
    })
}

fn off(v: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// Makes `op` as a system call and counts it: one syscall, one file op, and
/// `exits` exits (0 where no exit is modeled).
pub(crate) fn counted(op: FileOp<'_>, counters: &mut Counters, exits: u64) -> io::Result<FileOpOutput> {
    counters.syscalls += 1;
    counters.file_ops += 1;
    counters.exits += exits;
    syscall(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    #[cfg_attr(miri, ignore = "fallocate is a foreign function Miri cannot run")]
    fn open_stat_truncate_allocate_close_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = CString::new(dir.path().join("f").to_str().unwrap()).unwrap();
        let mut c = Counters::default();
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let FileOpOutput::Fd(fd) =
            counted(FileOp::Open { path: &path, flags, mode: 0o600 }, &mut c, 1).unwrap()
        else {
            panic!("open yields a descriptor")
        };
        counted(FileOp::Truncate(fd, 5000), &mut c, 1).unwrap();
        let st = counted(FileOp::Stat(fd), &mut c, 1).unwrap();
        assert_eq!(st, FileOpOutput::Stat(FileStat { kind: FileType::Regular, len: 5000 }));
        counted(FileOp::Allocate(fd, 0, 8192), &mut c, 1).unwrap();
        counted(FileOp::Close(fd), &mut c, 1).unwrap();
        counted(FileOp::Unlink(&path), &mut c, 1).unwrap();
        let gone = counted(FileOp::Unlink(&path), &mut c, 1).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
        let again = FileOp::Open { path: &path, flags: libc::O_RDONLY, mode: 0 };
        assert_eq!(counted(again, &mut c, 1).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!((c.file_ops, c.syscalls, c.exits), (8, 8, 8));
        let dir_path = CString::new(dir.path().to_str().unwrap()).unwrap();
        let FileOpOutput::Fd(d) =
            syscall(FileOp::Open { path: &dir_path, flags: libc::O_RDONLY, mode: 0 }).unwrap()
        else {
            panic!("open yields a descriptor")
        };
        assert!(matches!(
            syscall(FileOp::Stat(d)).unwrap(),
            FileOpOutput::Stat(FileStat { kind: FileType::Directory, .. })
        ));
        syscall(FileOp::Close(d)).unwrap();
    }
}
