//! Spill streams on exitless-rt: segments sealed in parallel on the vCPUs, IO
//! completions polled by the vCPUs, many streams sharing one runtime.

use std::sync::Arc;

use exitless_io::{BackendKind, OcallModel};
use exitless_rt::Runtime;
use exitless_seal::{DataKey, StreamParams};
use exitless_spill::{BackendChoice, SpillOptions, SpillReader, SpillWriter};

fn options(kind: BackendKind, rt: Option<Runtime>, segment_size: u32) -> SpillOptions {
    SpillOptions {
        params: StreamParams { segment_size, ..StreamParams::default() },
        backend: BackendChoice::Fixed(kind),
        queue_depth: 4,
        ocall_model: OcallModel { cycles_per_exit: 0, triple_above: Some(16 * 1024) },
        runtime: rt,
        insecure_fixed_randomness: Some(([5; 32], [6; 7])),
        ..SpillOptions::default()
    }
}

fn key() -> DataKey {
    DataKey::from_array([0x33; 32])
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn write(path: &str, opts: &SpillOptions, pt: &[u8], chunk: usize) -> bool {
    let mut w = SpillWriter::create(path, &key(), b"rt", opts).unwrap();
    for c in pt.chunks(chunk) {
        w.write(c).unwrap();
    }
    let parallel = w.is_parallel();
    w.finish().unwrap();
    parallel
}

#[test]
fn parallel_sealing_writes_the_same_bytes_as_sequential() {
    let rt = Runtime::builder().vcpus(2).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for kind in [BackendKind::Uring, BackendKind::Sync, BackendKind::Ocall] {
        for (seg, len, chunk) in [
            (4096u32, 100_000usize, 65_536usize),
            (65536, 3 << 20, 1 << 20),
            (4096, 4012, 4012),
            (4096, 50_000, 7),
        ] {
            let a = dir.path().join("seq").to_str().unwrap().to_owned();
            let b = dir.path().join("par").to_str().unwrap().to_owned();
            let pt = data(len);
            assert!(!write(&a, &options(kind, None, seg), &pt, chunk));
            assert!(write(&b, &options(kind, Some(rt.clone()), seg), &pt, chunk));
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{} {seg} {len}", kind.name());
            let mut r = SpillReader::open(&b, &key(), b"rt", &options(kind, None, seg)).unwrap();
            let mut back = vec![0u8; len];
            assert_eq!(r.read(&mut back).unwrap(), len);
            assert_eq!(back, pt);
        }
    }
    let s = rt.stats();
    assert!(s.poller_events > 0, "vCPUs polled IO completions: {s:?}");
}

#[test]
fn a_failing_disk_is_reported_by_a_parallel_stream() {
    let rt = Runtime::builder().vcpus(2).build().unwrap();
    for kind in [BackendKind::Uring, BackendKind::Sync] {
        let mut w =
            SpillWriter::create("/dev/full", &key(), b"rt", &options(kind, Some(rt.clone()), 4096)).unwrap();
        let err = w.write(&data(1 << 20)).and_then(|()| w.finish()).unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}

#[test]
fn a_thousand_streams_share_the_vcpus() {
    let rt = Runtime::builder().vcpus(2).build().unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let pt = Arc::new(data(64 * 1024));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (rt, dir, pt) = (rt.clone(), dir.clone(), pt.clone());
            std::thread::spawn(move || {
                for i in 0..125 {
                    let path = dir.path().join(format!("s{t}-{i}")).to_str().unwrap().to_owned();
                    let opts = options(BackendKind::Uring, Some(rt.clone()), 4096);
                    write(&path, &opts, &pt, 16 * 1024);
                    let mut r = SpillReader::open(&path, &key(), b"rt", &opts).unwrap();
                    let mut back = vec![0u8; pt.len()];
                    assert_eq!(r.read(&mut back).unwrap(), pt.len());
                    assert_eq!(&back, &*pt);
                    std::fs::remove_file(&path).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(rt.stats().live_tasks, 0);
}
