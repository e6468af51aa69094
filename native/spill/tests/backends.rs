//! Spill streams over every backend: identical bytes, round trips, exact exit
//! counts, failing disks, and forged completions.

use exitless_io::{BackendKind, OcallModel};
use exitless_seal::{Algorithm, DataKey, KeyId, StreamParams};
use exitless_spill::error::Op;
use exitless_spill::{BackendChoice, SpillError, SpillOptions, SpillReader, SpillWriter};

const KINDS: [BackendKind; 4] =
    [BackendKind::Uring, BackendKind::Ocall, BackendKind::Switchless, BackendKind::Sync];

fn key() -> DataKey {
    DataKey::from_array([0x11; 32])
}

fn options(kind: BackendKind, segment_size: u32) -> SpillOptions {
    SpillOptions {
        params: StreamParams {
            algorithm: Algorithm::Aes256Gcm,
            segment_size,
            key_id: KeyId([3; 16]),
            envelope: None,
        },
        backend: BackendChoice::Fixed(kind),
        queue_depth: 4,
        ocall_model: OcallModel { cycles_per_exit: 100, triple_above: Some(16 * 1024) },
        insecure_fixed_randomness: Some(([7; 32], [9; 7])),
        ..SpillOptions::default()
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 % 251) as u8).collect()
}

fn write(path: &str, opts: &SpillOptions, pt: &[u8], chunk: usize) -> exitless_spill::StreamStats {
    let mut w = SpillWriter::create(path, &key(), b"ctx", opts).unwrap();
    for c in pt.chunks(chunk.max(1)) {
        w.write(c).unwrap();
    }
    w.finish().unwrap();
    w.stats()
}

fn read_all(path: &str, opts: &SpillOptions) -> Result<Vec<u8>, SpillError> {
    let mut r = SpillReader::open(path, &key(), b"ctx", opts)?;
    let mut out = vec![0u8; r.plaintext_len() as usize];
    let n = r.read(&mut out)?;
    assert_eq!(n, out.len());
    Ok(out)
}

#[test]
fn every_backend_writes_identical_bytes_and_reads_them_back() {
    let dir = tempfile::tempdir_in(".").unwrap(); // on disk, so O_DIRECT applies to uring
    for (seg, len) in [(4096u32, 0usize), (4096, 1), (4096, 4096 * 5 + 100), (65536, 1 << 20), (256, 3000)] {
        let pt = data(len);
        let mut files = Vec::new();
        for kind in KINDS {
            let path = dir.path().join(format!("{}-{seg}-{len}", kind.name())).to_str().unwrap().to_owned();
            write(&path, &options(kind, seg), &pt, 1000);
            assert_eq!(read_all(&path, &options(kind, seg)).unwrap(), pt, "{} {seg} {len}", kind.name());
            files.push(std::fs::read(&path).unwrap());
        }
        for (kind, f) in KINDS.iter().zip(&files) {
            assert_eq!(f, &files[3], "{} differs from sync at segment size {seg}, length {len}", kind.name());
        }
    }
}

#[test]
fn random_access_and_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    let pt = data(4096 * 40);
    for kind in KINDS {
        let opts = options(kind, 4096);
        write(&path, &opts, &pt, 7777);
        let mut r = SpillReader::open(&path, &key(), b"ctx", &opts).unwrap();
        let mut buf = vec![0u8; 5000];
        for &pos in &[100_000u64, 3, 150_000, 4096 * 39, 60_000] {
            r.seek(pos as i64, 0).unwrap();
            let n = r.read(&mut buf).unwrap();
            let end = (pos as usize + 5000).min(pt.len());
            assert_eq!(&buf[..n], &pt[pos as usize..end], "{} at {pos}", kind.name());
        }
    }
}

#[test]
fn ocall_exits_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    // 4 KiB segments: one exit each. 100 segments of plaintext capacity 4080, segment 0 4012.
    let opts = options(BackendKind::Ocall, 4096);
    let pt = data(4012 + 99 * 4080);
    let s = write(&path, &opts, &pt, 65536);
    assert_eq!(s.segments, 100);
    // The file's open and close are exits too (through the backend).
    assert_eq!(
        (s.io.exits, s.io.file_ops),
        (102, 2),
        "one modeled exit per 4 KiB pwrite, plus open and close"
    );
    // 64 KiB segments: above 16 KiB, three exits each (Occlum SDK bounce path).
    let opts = options(BackendKind::Ocall, 65536);
    let pt = data((65536 - 84) + 9 * (65536 - 16));
    let s = write(&path, &opts, &pt, 65536);
    assert_eq!((s.segments, s.io.exits), (10, 32));
    // Reading: open and stat (one exit each); the first 64 KiB (segment 0 with the
    // header in front) in one pread of 3 exits; each later segment one pread of 64
    // KiB = 3 exits, and the final segment is read twice: checked at open, then read
    // again when the sequential read reaches it. Closing is one more.
    let mut r = SpillReader::open(&path, &key(), b"ctx", &opts).unwrap();
    let mut out = vec![0u8; pt.len()];
    r.read(&mut out).unwrap();
    assert_eq!(out, pt);
    assert_eq!((r.stats().io.exits, r.stats().io.file_ops, r.stats().stream_syscalls), (2 + 33, 2, 0));
    r.close();
    assert_eq!((r.stats().io.exits, r.stats().io.file_ops), (36, 3));
}

#[test]
fn uring_steady_state_makes_almost_no_exits() {
    // Page-cache writes (direct = false) so the test measures the ring, not the
    // disk: 20,000 segments of 4 KiB. Exits allowed: SQPOLL wake-ups, which happen
    // only when the kernel thread fell asleep after a second without work (at
    // stream start). The file's open and close run on the ring.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    let mut opts = options(BackendKind::Uring, 4096);
    opts.queue_depth = 8;
    opts.direct = Some(false);
    // Spin up to 100 ms for a completion instead of blocking: the configuration for
    // strictly exit-less streams (the default, 100 µs, suits 2-core machines).
    opts.uring.spin = Some(std::time::Duration::from_millis(100));
    opts.uring.sqpoll = Some(true);
    // The SQPOLL thread idles a second (as with 4 or more CPUs), not the 2 ms of a
    // 2-CPU default, so gaps in the test's own work do not put it to sleep.
    opts.uring.sq_idle_ms = Some(1000);
    let pt = data(4012 + 19_999 * 4080);
    write(&path, &opts, &pt[..100_000], 65536); // warm-up: ring set up, SQPOLL thread awake
    let s = write(&path, &opts, &pt, 1 << 20);
    assert_eq!(s.segments, 20_000);
    assert!(s.io.exits <= 20, "at most 1 exit per 1,000 segments in steady state, got {:?}", s.io);
    assert_eq!(s.io.exits, s.io.uring_enters, "every exit is an io_uring_enter");
    assert_eq!((s.io.file_ops, s.stream_syscalls), (2, 0), "open and close, on the ring");
    assert_eq!(read_all(&path, &opts).unwrap(), pt);
}

#[test]
fn full_disk_is_an_error_naming_the_segment_and_the_file_never_reads_whole() {
    for kind in KINDS {
        let opts = options(kind, 4096);
        let mut w = SpillWriter::create("/dev/full", &key(), b"ctx", &opts).unwrap();
        let pt = data(50_000);
        let err = w.write(&pt).and_then(|()| w.finish()).unwrap_err();
        match &err {
            SpillError::Io { path, op, segment, source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{}: {err}", kind.name());
                assert_eq!((path.as_deref(), *op), (Some("/dev/full"), Op::Write), "{err}");
                assert!(segment.is_some(), "{err}");
                let message = err.to_string();
                assert!(message.contains("/dev/full") && message.contains("segment"), "{message}");
                let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
                assert_eq!(source.and_then(std::io::Error::raw_os_error), Some(libc::ENOSPC));
            }
            other => panic!("{}: expected an IO error, got {other:?}", kind.name()),
        }
        assert!(matches!(w.write(b"more"), Err(SpillError::Closed { .. })));
    }
}

#[test]
fn unfinished_writers_leave_files_that_fail_integrity() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        let opts = options(kind, 4096);
        let mut w = SpillWriter::create(&path, &key(), b"ctx", &opts).unwrap();
        w.write(&data(30_000)).unwrap();
        drop(w);
        assert!(matches!(read_all(&path, &opts), Err(SpillError::Integrity { .. })), "{}", kind.name());
    }
}

#[test]
fn a_small_files_whole_life_costs_exact_counts_on_every_backend() {
    // A 5,000-byte spill file written, read back, closed and deleted. Each step of
    // its life goes through the backend: open, one write, close; open, one read of
    // the whole file (its end found by a short read: no stat), close; unlink. On
    // the OCALL path each is one modeled exit, the 64 KiB head read three (the
    // request is above 16 KiB); on io_uring none is a system call.
    let dir = tempfile::tempdir().unwrap();
    let pt = data(5000);
    for kind in KINDS {
        let mut opts = options(kind, 65536);
        opts.ocall_model.cycles_per_exit = 0;
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        let w = write(&path, &opts, &pt, 1 << 20);
        let mut r = SpillReader::open(&path, &key(), b"ctx", &opts).unwrap();
        let mut out = vec![0u8; 6000];
        let mut got = 0;
        loop {
            let n = r.read(&mut out[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(&out[..got], &pt[..], "{}", kind.name());
        r.close();
        let r = r.stats();
        let u = exitless_spill::unlink(&path, &opts).unwrap();
        assert!(!std::path::Path::new(&path).exists());
        let name = kind.name();
        assert_eq!((w.io.file_ops, r.io.file_ops, u.io.file_ops), (2, 2, 1), "{name}");
        assert_eq!((w.io.ops, r.io.ops), (1, 1), "{name}: one write, one read");
        assert_eq!((w.stream_syscalls, r.stream_syscalls), (0, 0), "{name}");
        match kind {
            BackendKind::Ocall => assert_eq!((w.io.exits, r.io.exits, u.io.exits), (3, 5, 1), "{name}"),
            BackendKind::Sync => {
                assert_eq!((w.io.syscalls, r.io.syscalls, u.io.syscalls), (3, 3, 1), "{name}");
                assert_eq!(w.io.exits + r.io.exits + u.io.exits, 0, "{name}: no exit model");
            }
            BackendKind::Uring => {
                for s in [&w.io, &r.io, &u.io] {
                    assert_eq!((s.syscalls, s.exits), (s.uring_enters, s.uring_enters), "{name}: {s:?}");
                }
            }
            _ => {}
        }
    }
    assert!(exitless_spill::unlink(
        dir.path().join("gone").to_str().unwrap(),
        &options(BackendKind::Uring, 65536)
    )
    .is_err_and(|e| matches!(e, SpillError::Io { op: Op::Delete, .. }) && e.errno() == Some(libc::ENOENT)));
}
