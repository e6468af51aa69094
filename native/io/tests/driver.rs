//! IoDriver: tasks await writes and reads while another thread polls completions
//! (in exitless-rt, the vCPUs). A minimal executor stands in for the runtime.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use exitless_io::{Backend, IoDriver, SyncBackend, UringBackend, UringConfig};

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn exercise(backend: Box<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("f"))
        .unwrap();
    let driver = IoDriver::new(backend);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (driver, stop) = (driver.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                driver.poll();
                std::hint::spin_loop();
            }
        })
    };
    let fd = file.as_raw_fd();
    // More writes than slots: later ones wait for a free slot.
    for i in 0..64u64 {
        let data = vec![i as u8; 4096];
        assert_eq!(block_on(driver.write(fd, i * 4096, &data, 0)).unwrap(), 4096);
    }
    let mut started = Vec::new();
    for i in 64..72u64 {
        if let Some(slot) = driver.try_start_write(fd, i * 4096, &[i as u8; 4096], 0).unwrap() {
            started.push(slot);
        }
    }
    assert!(!started.is_empty());
    for slot in started {
        block_on(driver.finish(slot)).unwrap();
    }
    let mut out = vec![0u8; 4096];
    for i in [0u64, 17, 63] {
        assert_eq!(block_on(driver.read(fd, i * 4096, &mut out)).unwrap(), 4096);
        assert!(out.iter().all(|&b| b == i as u8), "segment {i}");
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(driver.in_flight(), 0);
    let backend = driver.into_backend().ok().expect("no other references left");
    assert!(backend.counters().ops >= 67);
}

#[test]
fn sync_backend_through_the_driver() {
    exercise(Box::new(SyncBackend::new(4, 4096).unwrap()));
}

#[test]
fn uring_backend_through_the_driver() {
    exercise(Box::new(UringBackend::new(UringConfig::new(4, 4096)).unwrap()));
}
