//! A file's whole life through every backend ([`FileOp`]): the same outcomes
//! everywhere, and what each costs — io_uring makes no system call for any of it
//! (only SQPOLL wake-ups, counted as exits); the OCALL path one exit each.

use std::ffi::CString;

use exitless_io::{
    Backend, BackendKind, FileOp, FileOpOutput, FileStat, FileType, NullBackend, OcallBackend, OcallModel,
    SwitchlessBackend, SwitchlessConfig, SyncBackend, UringBackend, UringConfig,
};

fn backends() -> Vec<Box<dyn Backend>> {
    let model = OcallModel { cycles_per_exit: 10, triple_above: Some(16384) };
    let switchless = SwitchlessConfig { workers: 1, ..SwitchlessConfig::default() };
    vec![
        Box::new(UringBackend::new(UringConfig::new(2, 4096)).unwrap()),
        Box::new(OcallBackend::new(2, 4096, model).unwrap()),
        Box::new(SwitchlessBackend::new(2, 4096, switchless, model).unwrap()),
        Box::new(SyncBackend::new(2, 4096).unwrap()),
        Box::new(NullBackend::new(2, 4096).unwrap()),
    ]
}

/// Creates, sizes, checks, writes, reads, closes and deletes one file; returns the
/// number of file ops made.
fn life(b: &mut dyn Backend, dir: &std::path::Path) -> u64 {
    let name = dir.join(format!("f-{}", b.kind().name()));
    let path = CString::new(name.to_str().unwrap()).unwrap();
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
    let fd = b.open(&path, flags, 0o600).unwrap();
    let again = b.open(&path, flags, 0o600).unwrap_err();
    assert_eq!(again.raw_os_error(), Some(libc::EEXIST), "{}", b.kind().name());
    b.file_op(FileOp::Allocate(fd, 0, 8192)).unwrap();
    b.file_op(FileOp::Truncate(fd, 5000)).unwrap();
    assert_eq!(b.stat(fd).unwrap(), FileStat { kind: FileType::Regular, len: 5000 }, "{}", b.kind().name());
    if b.kind() != BackendKind::Null {
        b.write(0, fd, 0, b"hello", 0).unwrap();
        let mut done = Vec::new();
        while b.in_flight() > 0 {
            b.wait(&mut done).unwrap();
        }
        assert!(done.iter().all(|c| matches!(c.result, Ok(5))));
        assert_eq!(&std::fs::read(&name).unwrap()[..5], b"hello");
    }
    assert_eq!(b.file_op(FileOp::Close(fd)).unwrap(), FileOpOutput::Done);
    assert_eq!(b.stat(fd).unwrap_err().raw_os_error(), Some(libc::EBADF), "closed for real");
    b.file_op(FileOp::Unlink(&path)).unwrap();
    assert!(!name.exists(), "{}: unlinked", b.kind().name());
    let gone = b.file_op(FileOp::Unlink(&path)).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
    let dir_path = CString::new(dir.to_str().unwrap()).unwrap();
    let d = b.open(&dir_path, libc::O_RDONLY, 0).unwrap();
    assert_eq!(b.stat(d).unwrap().kind, FileType::Directory);
    b.file_op(FileOp::Close(d)).unwrap();
    12
}

#[test]
fn every_backend_runs_a_files_life_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    for mut b in backends() {
        // Warm: the SQPOLL thread is awake (its first wake-up is an exit).
        let warm = CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = b.open(&warm, libc::O_RDONLY, 0).unwrap();
        b.file_op(FileOp::Close(d)).unwrap();
        let before = b.counters();
        let ops = life(b.as_mut(), dir.path());
        let c = b.counters().since(&before);
        let name = b.kind().name();
        assert_eq!(c.file_ops, ops, "{name}");
        match b.kind() {
            // On the ring: no system call but `io_uring_enter`, each counted as an exit
            // (SQPOLL wake-ups, or blocking for a completion after the spin).
            BackendKind::Uring => {
                assert_eq!((c.syscalls, c.exits), (c.uring_enters, c.uring_enters), "{name}: {c:?}")
            }
            BackendKind::Ocall => {
                assert_eq!(c.exits, ops + 1, "{name}: one exit per file op, one for the write")
            }
            BackendKind::Switchless => {
                assert_eq!(c.fallbacks, ops + u64::from(c.fallbacks > ops), "{name}: {c:?}")
            }
            BackendKind::Sync => assert_eq!((c.syscalls, c.exits), (ops + 1, 0), "{name}: {c:?}"),
            BackendKind::Null => assert_eq!((c.syscalls, c.exits), (ops, 0), "{name}: {c:?}"),
        }
    }
}

#[test]
fn a_path_too_long_for_the_control_area_is_refused_on_the_ring() {
    let mut b = UringBackend::new(UringConfig::new(1, 4096)).unwrap();
    let long = CString::new(vec![b'a'; 5000]).unwrap();
    let err = b.open(&long, libc::O_RDONLY, 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    assert_eq!(b.counters().file_ops, 1);
}
