//! Spill streams on exitless-rt: segments sealed in parallel on the vCPUs, many
//! streams sharing one runtime, and tasks awaiting IO completions that the vCPUs poll.

use std::sync::Arc;

use exitless_io::{Backend, BackendKind, IoDriver, OcallModel, UringBackend, UringConfig};
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
    // The caller and the vCPUs sealed: every helper task ran and finished.
    let s = rt.stats();
    assert!(s.spawned > 0 && s.live_tasks == 0, "{s:?}");
}

#[test]
fn an_io_bound_stream_stops_spawning_sealers_and_writes_the_same_bytes() {
    let rt = Runtime::builder().vcpus(2).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let slow = |rt: Option<Runtime>| SpillOptions {
        // About a millisecond per write: the IO, not sealing, is the bottleneck.
        ocall_model: OcallModel { cycles_per_exit: 3_000_000, triple_above: None },
        ..options(BackendKind::Ocall, rt, 65536)
    };
    let pt = data(8 << 20);
    let (a, b) = (dir.path().join("seq"), dir.path().join("par"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert!(!write(a, &slow(None), &pt, pt.len()));
    assert!(write(b, &slow(Some(rt.clone())), &pt, pt.len()));
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    // Handing the first batch to the IO took longer than sealing the second: the
    // other half of the stream went one segment at a time, with no sealing tasks.
    let s = rt.stats();
    assert_eq!(s.spawned, 4, "two batches' helper tasks only: {s:?}");
}

/// The vCPUs' side of a driver: poll its completions in their scheduling loop.
struct DriverPoller(Arc<IoDriver>);

impl exitless_rt::Poller for DriverPoller {
    fn poll(&self) -> usize {
        self.0.poll()
    }
}

/// Writes one sealed stream from a task: seal each segment, await its write on a
/// driver (whose completion a vCPU polls), then the next.
async fn async_stream(driver: &IoDriver, path: &std::path::Path, pt: &[u8]) -> std::io::Result<()> {
    use exitless_seal::Encryptor;
    let file = std::fs::File::create(path)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let enc =
        Encryptor::new(&key(), &options(BackendKind::Uring, None, 4096).params, b"async", [7; 32], [8; 7])
            .expect("encryptor");
    let layout = enc.layout();
    let (mut index, mut rest) = (0u64, pt);
    loop {
        let base = if index == 0 { enc.header().len() } else { 0 };
        let n = rest.len().min(layout.capacity(index));
        let last = n == rest.len();
        let mut buf = vec![0u8; 4096];
        buf[..base].copy_from_slice(&enc.header().as_bytes()[..base]);
        buf[base..base + n].copy_from_slice(&rest[..n]);
        let sealed = enc.seal_in_place(index, last, &mut buf[base..], n).expect("seal");
        let offset = if index == 0 { 0 } else { layout.offset(index) };
        let len = base + sealed;
        assert_eq!(driver.write(fd, offset, &buf[..len], 0).await?, len);
        rest = &rest[n..];
        if last {
            break;
        }
        index += 1;
    }
    Ok(())
}

#[test]
fn a_thousand_tasks_write_streams_awaiting_completions_the_vcpus_poll() {
    let rt = Runtime::builder().vcpus(2).build().unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Eight io_uring drivers, each lent to one task at a time: rings and untrusted
    // buffers stay bounded however many streams are open.
    let drivers: Arc<Vec<exitless_rt::Mutex<Arc<IoDriver>>>> = Arc::new(
        (0..8)
            .map(|_| {
                let config = UringConfig::new(4, 4096);
                let driver = IoDriver::new(Box::new(UringBackend::new(config).unwrap()) as Box<dyn Backend>);
                rt.add_poller(Arc::new(DriverPoller(driver.clone())));
                exitless_rt::Mutex::new(driver)
            })
            .collect(),
    );
    let pt = Arc::new(data(20_000));
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let (dir, drivers, pt) = (dir.clone(), drivers.clone(), pt.clone());
            rt.spawn(async move {
                let path = dir.path().join(format!("a{i}"));
                let driver = drivers[i % drivers.len()].lock().await;
                async_stream(&driver, &path, &pt).await.unwrap();
            })
        })
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    let s = rt.stats();
    // 5,000 writes; nothing but the vCPUs' polls delivers completions here (a poll
    // may also find one reaped by the backend's own submit path, so not all count).
    assert!(s.poller_events >= 1000 * 5 * 9 / 10, "the vCPUs delivered the completions: {s:?}");
    assert_eq!(s.live_tasks, 0);
    for i in [0, 1, 499, 999] {
        let path = dir.path().join(format!("a{i}"));
        let mut r = SpillReader::open(
            path.to_str().unwrap(),
            &key(),
            b"async",
            &options(BackendKind::Sync, None, 4096),
        )
        .unwrap();
        let mut back = vec![0u8; pt.len() + 1];
        assert_eq!(r.read(&mut back).unwrap(), pt.len());
        assert_eq!(&back[..pt.len()], &pt[..]);
    }
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
