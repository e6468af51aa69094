//! Memory follows the data, never an unauthenticated header field: large segments
//! travel in several IOs on every backend, a small stream with gigabyte segments
//! takes small buffers, and a forged segment size on a sparse file is refused
//! before anything is allocated for it.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use exitless_io::{BackendKind, OcallModel};
use exitless_seal::{Algorithm, DataKey, KeyId, StreamParams, MAX_SEGMENT_SIZE};
use exitless_spill::memory::IO_SIZE;
use exitless_spill::{BackendChoice, SpillError, SpillOptions, SpillReader, SpillWriter};

/// The tests here measure the process's peak RSS: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const KINDS: [BackendKind; 4] =
    [BackendKind::Uring, BackendKind::Ocall, BackendKind::Switchless, BackendKind::Sync];

fn key() -> DataKey {
    DataKey::from_array([0x5a; 32])
}

fn options(kind: BackendKind, segment_size: u32) -> SpillOptions {
    SpillOptions {
        params: StreamParams {
            algorithm: Algorithm::Aes256Gcm,
            segment_size,
            key_id: KeyId::NONE,
            envelope: None,
        },
        backend: BackendChoice::Fixed(kind),
        queue_depth: 4,
        ocall_model: OcallModel { cycles_per_exit: 0, triple_above: Some(16 * 1024) },
        ..SpillOptions::default()
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn write(path: &str, opts: &SpillOptions, pt: &[u8]) -> exitless_spill::StreamStats {
    let mut w = SpillWriter::create(path, &key(), b"m", opts).unwrap();
    for c in pt.chunks(300_000) {
        w.write(c).unwrap();
    }
    w.finish().unwrap();
    w.stats()
}

fn read_all(path: &str, opts: &SpillOptions) -> Result<Vec<u8>, SpillError> {
    let mut r = SpillReader::open(path, &key(), b"m", opts)?;
    let mut out = vec![0u8; r.plaintext_len() as usize];
    let (mut done, len) = (0, out.len());
    while done < len {
        let n = r.read(&mut out[done..(done + 777_777).min(len)])?;
        assert!(n > 0);
        done += n;
    }
    Ok(out)
}

#[test]
fn segments_larger_than_one_io_round_trip_on_every_backend() {
    let _serial = serial();
    // On disk (not tmpfs), buffered and O_DIRECT: direct pieces must stay block-aligned.
    let dir = tempfile::tempdir_in(".").unwrap();
    let seg = 3 * IO_SIZE as u32 + 8192;
    for (kind, direct) in KINDS.iter().flat_map(|&k| [(k, None), (k, Some(true))]) {
        let options = |kind, seg| SpillOptions { direct, ..options(kind, seg) };
        for len in [0, 10, seg as usize, 5 * seg as usize + 12_345] {
            let path =
                dir.path().join(format!("{}-{direct:?}-{len}", kind.name())).to_str().unwrap().to_owned();
            let pt = data(len);
            let stats = write(&path, &options(kind, seg), &pt);
            let segments = stats.segments;
            assert!(segments as usize >= len / seg as usize, "{kind:?} {len}");
            // More writes than segments: each large segment went out in slot-sized pieces.
            if len > IO_SIZE {
                assert!(
                    stats.io.ops > segments,
                    "{kind:?} {len}: {} ops for {segments} segments",
                    stats.io.ops
                );
            }
            assert_eq!(read_all(&path, &options(kind, seg)).unwrap(), pt, "{kind:?} {len}");
            // Random access into the middle of a large segment.
            if len > seg as usize {
                let mut r = SpillReader::open(&path, &key(), b"m", &options(kind, seg)).unwrap();
                let at = seg as i64 + 1_500_000;
                r.seek(at, 0).unwrap();
                let mut got = vec![0u8; 100];
                r.read(&mut got).unwrap();
                assert_eq!(got, pt[at as usize..at as usize + 100], "{kind:?}");
            }
        }
    }
}

#[test]
fn a_tampered_piece_of_a_large_segment_fails_the_segment() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s").to_str().unwrap().to_owned();
    let seg = 2 * IO_SIZE as u32 + 4096;
    let pt = data(3 * seg as usize);
    write(&path, &options(BackendKind::Sync, seg), &pt);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    // The second piece of segment 1.
    let mut b = [0u8; 1];
    f.read_at(&mut b, u64::from(seg) + IO_SIZE as u64 + 5).unwrap();
    f.write_at(&[b[0] ^ 1], u64::from(seg) + IO_SIZE as u64 + 5).unwrap();
    for kind in KINDS {
        let err = read_all(&path, &options(kind, seg)).unwrap_err();
        assert!(matches!(err, SpillError::Integrity { .. }), "{kind:?}: {err}");
        assert!(err.to_string().contains("segment 1"), "{err}");
    }
}

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_small_stream_with_gigabyte_segments_takes_memory_for_its_data_only() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let before = peak_rss();
    let started = Instant::now();
    for kind in KINDS {
        let path = dir.path().join(kind.name()).to_str().unwrap().to_owned();
        let pt = data(2_000_000);
        write(&path, &options(kind, MAX_SEGMENT_SIZE), &pt);
        assert_eq!(read_all(&path, &options(kind, MAX_SEGMENT_SIZE)).unwrap(), pt);
    }
    exitless_spill::pool::clear_pool();
    // Before: each stream mapped (and io_uring pinned) queue depth × 1 GiB and took
    // ~17 s. Now a few MiB per stream; the bound leaves room for the test harness.
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 128 << 20, "peak RSS grew by {} MiB", grew >> 20);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_queue_depth_whose_buffers_would_exceed_the_stream_limit_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q").to_str().unwrap().to_owned();
    for kind in KINDS {
        let mut opts = options(kind, MAX_SEGMENT_SIZE);
        opts.queue_depth = 1024;
        let err = SpillWriter::create(&path, &key(), b"m", &opts).err().expect("refused");
        assert!(matches!(err, SpillError::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains("lower queue_depth"), "{err}");
        // The same depth with small segments is fine.
        opts.params.segment_size = 65536;
        SpillWriter::create(&path, &key(), b"m", &opts).unwrap().finish().unwrap();
    }
}

#[test]
fn a_forged_segment_size_on_a_sparse_file_is_refused_at_once() {
    let _serial = serial();
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("forged").to_str().unwrap().to_owned();
    // An honest empty stream with 64 KiB segments...
    write(&path, &options(BackendKind::Sync, 65536), b"");
    // ...whose header the host rewrites to claim 1 GiB segments, extended to 20 GiB
    // of holes.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let at = 8; // the segment size field (docs/FORMAT.md, section 2)
    f.write_at(&MAX_SEGMENT_SIZE.to_be_bytes(), at).unwrap();
    f.set_len(20 << 30).unwrap();
    for kind in KINDS {
        let before = peak_rss();
        let started = Instant::now();
        let err = SpillReader::open(&path, &key(), b"m", &options(kind, 65536)).err().expect("refused");
        let took = started.elapsed();
        assert!(matches!(err, SpillError::Integrity { .. }), "{kind:?}: {err}");
        assert!(err.to_string().contains("hole"), "{err}");
        assert!(took < Duration::from_secs(1), "{kind:?}: {took:?}");
        assert!(peak_rss() - before < 32 << 20, "{kind:?}");
    }
}

#[test]
fn a_writer_never_follows_a_symlink_and_a_reader_wants_a_regular_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for kind in KINDS {
        let err =
            SpillWriter::create(link.to_str().unwrap(), &key(), b"m", &options(kind, 4096)).err().unwrap();
        assert!(matches!(err, SpillError::Io { .. }) && err.errno() == Some(libc::ELOOP), "{kind:?}: {err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me", "the link's target was truncated");
        let err = SpillReader::open("/dev/zero", &key(), b"m", &options(kind, 4096)).err().unwrap();
        assert!(
            matches!(err, SpillError::Format { .. }) && err.to_string().contains("not a regular file"),
            "{err}"
        );
    }
}

#[test]
fn a_long_stream_coalesces_consecutive_segments_into_io_sized_writes() {
    let _serial = serial();
    use exitless_spill::memory::COALESCE_AFTER;
    let dir = tempfile::tempdir_in(".").unwrap();
    // 20,000 segments of 4 KiB; the first COALESCE_AFTER bytes one write each.
    let seg = 4096usize;
    let segments = 20_000usize;
    let pt = data(4012 + (segments - 1) * 4080);
    let single = COALESCE_AFTER as usize / seg;
    let per_write = IO_SIZE / seg;
    let expected_writes = single + (segments - single).div_ceil(per_write);
    let mut files = Vec::new();
    for kind in KINDS {
        for direct in [Some(false), Some(true)] {
            let path = dir.path().join(format!("{}-{direct:?}", kind.name())).to_str().unwrap().to_owned();
            let mut opts = options(kind, seg as u32);
            opts.direct = direct;
            opts.insecure_fixed_randomness = Some(([3; 32], [4; 7]));
            let stats = write(&path, &opts, &pt);
            assert_eq!(stats.segments as usize, segments, "{kind:?}");
            // Exact: one write per segment below COALESCE_AFTER, then one per IO_SIZE.
            assert_eq!(stats.io.ops as usize, expected_writes, "{kind:?} direct={direct:?}: {:?}", stats.io);
            let back = read_all(&path, &opts).unwrap();
            assert!(back == pt, "{kind:?} direct={direct:?}");
            // And the reader reads windows: far fewer reads than segments.
            let mut r = SpillReader::open(&path, &key(), b"m", &opts).unwrap();
            let mut out = vec![0u8; pt.len()];
            let mut done = 0;
            while done < out.len() {
                done += r.read(&mut out[done..]).unwrap();
            }
            let reads = r.stats().io.ops as usize;
            assert!(reads <= segments.div_ceil(per_write) + 2, "{kind:?}: {reads} reads");
            files.push(std::fs::read(&path).unwrap());
        }
    }
    // With the same randomness, every backend and IO pattern wrote the same bytes.
    assert_eq!(files.len(), 2 * KINDS.len());
    assert!(files.iter().all(|f| *f == files[0]), "files differ across backends or IO sizes");
}
