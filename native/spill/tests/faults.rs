//! Fault injection at every segment position, on every syscall backend: ENOSPC,
//! EIO, EINTR and short transfers on writes, reads and fsync
//! ([`exitless_io::faults`]). Each case must end one of two ways:
//! - an error the writer reports (and a file no reader accepts), or a reader error;
//! - a transparent retry (EINTR, short transfers), counted in `resubmits`, with a
//!   stream that reads back complete and byte-for-byte correct.
//!
//! Never shorter or corrupted plaintext. `faults_summary` prints the table that
//! docs/HARDENING.md records.

use std::sync::Arc;

use exitless_io::{BackendKind, FaultPlan, OcallModel};
use exitless_seal::{DataKey, StreamParams};
use exitless_spill::error::Op;
use exitless_spill::{BackendChoice, SpillError, SpillOptions, SpillReader, SpillWriter};

const KINDS: [BackendKind; 4] =
    [BackendKind::Sync, BackendKind::Ocall, BackendKind::Switchless, BackendKind::Uring];

/// 4 KiB segments: segment 0 holds 4012 bytes, the others 4080. 11 segments.
const SEG: u32 = 4096;
const LEN: usize = 4012 + 9 * 4080 + 1234;
const SEGMENTS: u64 = 11;

fn key() -> DataKey {
    DataKey::from_array([0x5a; 32])
}

fn data() -> Vec<u8> {
    (0..LEN).map(|i| (i * 167 % 251) as u8).collect()
}

fn options(kind: BackendKind, faults: Option<&str>) -> SpillOptions {
    SpillOptions {
        params: StreamParams { segment_size: SEG, ..StreamParams::default() },
        backend: BackendChoice::Fixed(kind),
        queue_depth: 4,
        ocall_model: OcallModel { cycles_per_exit: 0, triple_above: Some(16 * 1024) },
        faults: faults.map(|f| Arc::new(FaultPlan::parse(f).unwrap())),
        ..SpillOptions::default()
    }
}

/// Writes the test stream in 1000-byte writes; the first error ends it.
fn write(path: &str, opts: &SpillOptions) -> Result<exitless_spill::StreamStats, SpillError> {
    let mut w = SpillWriter::create(path, &key(), b"faults", opts)?;
    let pt = data();
    let mut result = Ok(());
    for c in pt.chunks(1000) {
        result = w.write(c);
        if result.is_err() {
            break;
        }
    }
    result.and_then(|()| w.finish()).map(|()| w.stats())
}

/// Reads the whole stream in 3000-byte reads (so a failure can come mid-way).
fn read(path: &str, opts: &SpillOptions) -> Result<(Vec<u8>, exitless_spill::StreamStats), SpillError> {
    let mut r = SpillReader::open(path, &key(), b"faults", opts)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 3000];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((out, r.stats()));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn errno_of(e: &SpillError) -> Option<i32> {
    e.errno()
}

/// What a reader made of a file: "ok" (complete and correct), or the error class.
fn reader_verdict(path: &str, kind: BackendKind) -> &'static str {
    match read(path, &options(kind, None)) {
        Ok((out, _)) => {
            assert!(out == data(), "{path}: a reader returned {} bytes that are not the stream", out.len());
            "ok"
        }
        Err(SpillError::Integrity { .. }) => "IntegrityError",
        Err(SpillError::Format { .. }) => "FormatError",
        Err(SpillError::Io { .. }) => "OSError",
        Err(e) => panic!("{path}: unexpected reader error {e:?}"),
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir_in(".").unwrap() // on disk: O_DIRECT works where asked for
}

#[test]
fn enospc_and_eio_at_every_write_are_reported_and_no_reader_accepts_the_file() {
    let dir = tmp();
    for kind in KINDS {
        for (fault, errno) in [("enospc", libc::ENOSPC), ("eio", libc::EIO)] {
            for k in 0..SEGMENTS {
                let path =
                    dir.path().join(format!("{}-{fault}-{k}", kind.name())).to_str().unwrap().to_owned();
                let err = write(&path, &options(kind, Some(&format!("{fault}@segment={k}")))).unwrap_err();
                let what = format!("{} {fault}@segment={k}", kind.name());
                assert_eq!(errno_of(&err), Some(errno), "{what}: {err:?}");
                assert_eq!(err.segment(), Some(k), "{what}: {err}");
                assert!(err.to_string().contains(&format!("segment {k}")), "{what}: {err}");
                let verdict = reader_verdict(&path, kind);
                assert_ne!(verdict, "ok", "{what}: the file read back whole");
            }
        }
    }
}

#[test]
fn eintr_and_short_writes_are_retried_and_the_stream_is_complete() {
    let dir = tmp();
    for kind in KINDS {
        for direct in [None, Some(true)] {
            let mut specs: Vec<String> = (0..SEGMENTS)
                .flat_map(|k| [format!("eintr@segment={k}"), format!("short@segment={k}")])
                .collect();
            specs.extend(["eintr@write=*".into(), "short@write=*".into()]);
            for spec in specs {
                let path = dir.path().join(format!("{}-{spec}", kind.name())).to_str().unwrap().to_owned();
                let mut opts = options(kind, Some(&spec));
                opts.direct = direct;
                let what = format!("{} {spec} direct={direct:?}", kind.name());
                let stats = write(&path, &opts).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                let plan = opts.faults.as_ref().unwrap();
                let expected = if spec.contains('*') { SEGMENTS } else { 1 };
                assert_eq!(plan.injected(), expected, "{what}");
                assert!(stats.io.resubmits >= expected, "{what}: {:?}", stats.io);
                assert_eq!(reader_verdict(&path, kind), "ok", "{what}");
            }
        }
    }
}

#[test]
fn read_faults_at_every_position_are_errors_or_transparent() {
    let dir = tmp();
    for kind in KINDS {
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        write(&path, &options(kind, None)).unwrap();
        // One read per segment (the final one first, at open), so positions
        // 0..SEGMENTS cover every segment.
        for k in 0..SEGMENTS {
            let what = format!("{} eio@read={k}", kind.name());
            let err = read(&path, &options(kind, Some(&format!("eio@read={k}")))).unwrap_err();
            assert_eq!(errno_of(&err), Some(libc::EIO), "{what}: {err:?}");
            for spec in [format!("eintr@read={k}"), format!("short@read={k}")] {
                let what = format!("{} {spec}", kind.name());
                let opts = options(kind, Some(&spec));
                let (out, stats) = read(&path, &opts).unwrap_or_else(|e| panic!("{what}: {e:?}"));
                assert!(out == data(), "{what}: wrong plaintext");
                assert_eq!(opts.faults.as_ref().unwrap().injected(), 1, "{what}");
                assert!(stats.io.resubmits >= 1, "{what}: {:?}", stats.io);
            }
        }
        for spec in ["eintr@read=*", "short@read=*", "short@read=*,eintr@write=*"] {
            let (out, stats) = read(&path, &options(kind, Some(spec))).unwrap();
            assert!(out == data(), "{} {spec}", kind.name());
            assert!(stats.io.resubmits >= SEGMENTS, "{} {spec}: {:?}", kind.name(), stats.io);
        }
    }
}

#[test]
fn fsync_faults_are_reported_or_retried() {
    let dir = tmp();
    for kind in KINDS {
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        let mut opts = options(kind, Some("eio@fsync"));
        opts.sync = true;
        let err = write(&path, &opts).unwrap_err();
        assert_eq!(errno_of(&err), Some(libc::EIO), "{}: {err:?}", kind.name());
        assert!(err.to_string().contains("cannot sync"), "{err}");
        let mut opts = options(kind, Some("eintr@fsync"));
        opts.sync = true;
        write(&path, &opts).unwrap_or_else(|e| panic!("{}: {e:?}", kind.name()));
        assert_eq!(reader_verdict(&path, kind), "ok");
    }
}

#[test]
fn faults_in_parallel_sealed_streams() {
    // Streams on the runtime seal batches on the vCPUs and submit them in order:
    // the same guarantees, with larger writes.
    let Some(rt) = exitless_spill::runtime::global() else { return };
    let dir = tmp();
    let pt: Vec<u8> = (0..(3 << 20)).map(|i| (i % 241) as u8).collect();
    for kind in KINDS {
        // 768 segments of 4 KiB: the first 256 (1 MiB) one write each, then one write
        // per 256: write 257 is the last, coalesced one.
        for spec in ["enospc@segment=100", "enospc@write=257", "short@write=*", "eintr@write=*"] {
            let path = dir.path().join(format!("{}-{spec}", kind.name())).to_str().unwrap().to_owned();
            let opts = SpillOptions { runtime: Some(rt.clone()), ..options(kind, Some(spec)) };
            let mut w = SpillWriter::create(&path, &key(), b"faults", &opts).unwrap();
            let written = w.write(&pt).and_then(|()| w.finish());
            let read_back =
                SpillReader::open(&path, &key(), b"faults", &options(kind, None)).and_then(|mut r| {
                    let mut out = vec![0u8; r.plaintext_len() as usize];
                    r.read(&mut out).map(|n| out[..n].to_vec())
                });
            if spec.starts_with("enospc") {
                assert_eq!(errno_of(&written.unwrap_err()), Some(libc::ENOSPC), "{} {spec}", kind.name());
                assert!(read_back.is_err(), "{} {spec}: read back whole", kind.name());
            } else {
                written.unwrap_or_else(|e| panic!("{} {spec}: {e:?}", kind.name()));
                assert!(read_back.unwrap() == pt, "{} {spec}", kind.name());
            }
        }
    }
}

#[test]
fn a_forged_completion_fails_the_stream_with_a_rejected_completion() {
    // `forge`: the completion of that write or read claims one byte more than was
    // asked for, as a hostile kernel would forge it. io_uring's validator rejects
    // it; the stream fails with its own error, no errno, naming file and segment.
    let dir = tmp();
    for k in [0, 3, SEGMENTS - 1] {
        let path = dir.path().join(format!("forge-{k}")).to_str().unwrap().to_owned();
        let err =
            write(&path, &options(BackendKind::Uring, Some(&format!("forge@segment={k}")))).unwrap_err();
        assert!(matches!(err, SpillError::RejectedCompletion { op: Op::Write, .. }), "{k}: {err:?}");
        assert_eq!((err.path(), err.segment(), err.errno()), (Some(path.as_str()), Some(k), None), "{err}");
        assert!(err.rejected_completion().is_some_and(|r| !r.is_earlier()), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot write segment {k} of {path}: rejected a completion from the kernel: "
            )),
            "{message}"
        );
        let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert!(source.and_then(exitless_io::error::rejected_completion).is_some(), "{err:?}");
        assert_ne!(
            reader_verdict(&path, BackendKind::Uring),
            "ok",
            "forge@segment={k}: the file read back whole"
        );
    }
    let path = dir.path().join("whole").to_str().unwrap().to_owned();
    write(&path, &options(BackendKind::Uring, None)).unwrap();
    for k in 0..4 {
        let err = read(&path, &options(BackendKind::Uring, Some(&format!("forge@read={k}")))).unwrap_err();
        assert!(
            matches!(err, SpillError::RejectedCompletion { op: Op::Read | Op::ReadHeader, .. }),
            "read {k}: {err:?}"
        );
        assert_eq!((err.path(), err.errno()), (Some(path.as_str()), None), "{err}");
    }
    // The next stream gets a backend that works (the disabled one is not pooled).
    assert_eq!(reader_verdict(&path, BackendKind::Uring), "ok");
    // Backends whose completions no validator sees cannot take a forgery.
    for kind in [BackendKind::Sync, BackendKind::Ocall, BackendKind::Switchless] {
        let err = write(&path, &options(kind, Some("forge@write=0"))).unwrap_err();
        assert!(matches!(err, SpillError::InvalidArgument { .. }), "{}: {err:?}", kind.name());
    }
}

#[test]
fn the_null_backend_refuses_fault_injection() {
    let err =
        SpillWriter::create("/dev/null", &key(), b"", &options(BackendKind::Null, Some("eio@segment=1")))
            .err()
            .unwrap();
    assert!(matches!(err, SpillError::InvalidArgument { .. }), "{err:?}");
}

/// Prints, for each backend and fault, what the writer and a reader reported
/// (`cargo test -p exitless-spill --test faults -- --nocapture faults_summary`).
#[test]
fn faults_summary() {
    let dir = tmp();
    println!("| backend | fault | positions | writer | reader |");
    println!("|---|---|---|---|---|");
    for kind in KINDS {
        for fault in ["enospc", "eio", "eintr", "short"] {
            let mut writer = std::collections::BTreeSet::new();
            let mut reader = std::collections::BTreeSet::new();
            for k in 0..SEGMENTS {
                let path =
                    dir.path().join(format!("{}-{fault}-{k}", kind.name())).to_str().unwrap().to_owned();
                writer.insert(match write(&path, &options(kind, Some(&format!("{fault}@segment={k}")))) {
                    Ok(s) => format!("ok ({} resubmit)", s.io.resubmits),
                    Err(e) => format!("errno {}", errno_of(&e).unwrap_or(-1)),
                });
                reader.insert(reader_verdict(&path, kind));
            }
            let w: Vec<_> = writer.into_iter().collect();
            let r: Vec<_> = reader.into_iter().collect();
            println!(
                "| {} | {fault}@segment=k | 0..{SEGMENTS} | {} | {} |",
                kind.name(),
                w.join(", "),
                r.join(", ")
            );
        }
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        write(&path, &options(kind, None)).unwrap();
        for fault in ["eio", "eintr", "short"] {
            let mut reader = std::collections::BTreeSet::new();
            for k in 0..SEGMENTS {
                reader.insert(match read(&path, &options(kind, Some(&format!("{fault}@read={k}")))) {
                    Ok((out, s)) if out == data() => format!("ok ({} resubmit)", s.io.resubmits),
                    Ok(_) => panic!("{} {fault}@read={k}: wrong plaintext", kind.name()),
                    Err(e) => format!("errno {}", errno_of(&e).unwrap_or(-1)),
                });
            }
            let r: Vec<_> = reader.into_iter().collect();
            println!("| {} | {fault}@read=k | 0..{SEGMENTS} | (complete) | {} |", kind.name(), r.join(", "));
        }
    }
}
