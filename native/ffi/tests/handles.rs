//! Handles under misuse from other threads: `close` racing calls in flight, on
//! every backend (`free` racing a call is tested in the crate, `handle.rs`). Each race either lets the call finish or fails it
//! with `EXITLESS_ERR_CLOSED`; it never crashes, hangs or corrupts memory (these
//! tests also run under AddressSanitizer: `make asan`). Forked children are tested
//! from Python (tests/test_hostile_handles.py): a fork inside the multi-threaded
//! test harness is not safe.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Barrier;

use exitless_ffi::*;

const KEY: [u8; 32] = [0x3c; 32];
const BACKENDS: [u8; 4] =
    [EXITLESS_BACKEND_URING, EXITLESS_BACKEND_OCALL, EXITLESS_BACKEND_SWITCHLESS, EXITLESS_BACKEND_SYNC];
const ROUNDS: usize = 100;

fn options(backend: u8) -> ExitlessOptions {
    let mut o = std::mem::MaybeUninit::<ExitlessOptions>::uninit();
    // SAFETY: `o` is writable; the call fills every field.
    assert_eq!(unsafe { exitless_options_default(o.as_mut_ptr()) }, EXITLESS_OK);
    // SAFETY: initialized by the call above.
    let mut o = unsafe { o.assume_init() };
    o.segment_size = 4096;
    o.backend = backend;
    o.ocall_cycles = 0;
    o
}

/// A handle pointer that crosses threads (the ABI allows calls from any thread).
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: handles are internally locked; sharing them across threads is what is tested.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so closures capture the whole `Shared`, not the field).
    fn get(&self) -> *mut T {
        self.0
    }
}

fn open_writer(path: &str, backend: u8) -> *mut ExitlessWriter {
    let p = CString::new(path).unwrap();
    let mut w = ptr::null_mut();
    let o = options(backend);
    // SAFETY: every pointer is valid for the stated lengths.
    let st = unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w) };
    assert_eq!(st, EXITLESS_OK);
    w
}

fn last_error() -> String {
    // SAFETY: the message is a NUL-terminated string owned by this thread.
    unsafe { std::ffi::CStr::from_ptr(exitless_last_error_message()) }.to_string_lossy().into_owned()
}

fn open_reader(path: &str, backend: u8) -> *mut ExitlessReader {
    let p = CString::new(path).unwrap();
    let mut r = ptr::null_mut();
    let o = options(backend);
    // SAFETY: every pointer is valid for the stated lengths.
    let st = unsafe { exitless_reader_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut r) };
    assert_eq!(st, EXITLESS_OK);
    r
}

#[test]
fn close_racing_writes_fails_the_writes_never_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![7u8; 20_000];
    let (closed, ok) = (AtomicUsize::new(0), AtomicUsize::new(0));
    for backend in BACKENDS {
        for round in 0..ROUNDS {
            let path = dir.path().join(format!("w{backend}-{round}")).to_str().unwrap().to_owned();
            let w = Shared(open_writer(&path, backend));
            let start = Barrier::new(3);
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        start.wait();
                        loop {
                            // SAFETY: the handle is not freed until both threads are joined.
                            let st = unsafe { exitless_writer_write(w.get(), data.as_ptr(), data.len()) };
                            match st {
                                EXITLESS_OK => ok.fetch_add(1, Relaxed),
                                EXITLESS_ERR_CLOSED => break closed.fetch_add(1, Relaxed),
                                other => panic!("write returned {other}: {}", last_error()),
                            };
                        }
                    });
                }
                start.wait();
                std::thread::yield_now();
                // SAFETY: as above; close keeps the handle valid.
                assert_eq!(unsafe { exitless_writer_close(w.get()) }, EXITLESS_OK);
            });
            // SAFETY: both threads are done; closed twice is fine, then freed once.
            unsafe {
                assert_eq!(exitless_writer_close(w.get()), EXITLESS_OK);
                assert_eq!(exitless_writer_write(w.get(), data.as_ptr(), 1), EXITLESS_ERR_CLOSED);
                assert_eq!(exitless_writer_finish(w.get()), EXITLESS_ERR_CLOSED);
                exitless_writer_free(w.get());
            }
        }
    }
    assert_eq!(closed.load(Relaxed), 2 * BACKENDS.len() * ROUNDS, "every writer thread saw the close");
    assert!(ok.load(Relaxed) > 0);
}

#[test]
fn close_racing_reads_fails_them_or_lets_them_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r").to_str().unwrap().to_owned();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let w = open_writer(&path, EXITLESS_BACKEND_SYNC);
    // SAFETY: `w` is live; `payload` is readable.
    unsafe {
        assert_eq!(exitless_writer_write(w, payload.as_ptr(), payload.len()), EXITLESS_OK);
        assert_eq!(exitless_writer_finish(w), EXITLESS_OK);
        exitless_writer_free(w);
    }
    for backend in BACKENDS {
        for _ in 0..ROUNDS {
            let r = Shared(open_reader(&path, backend));
            let entered = Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut buf = vec![0u8; payload.len()];
                    let mut n = 0usize;
                    entered.wait();
                    // SAFETY: the handle is freed only after this thread is joined;
                    // `buf` is writable.
                    let st = unsafe { exitless_reader_read(r.get(), buf.as_mut_ptr(), buf.len(), &mut n) };
                    match st {
                        EXITLESS_OK => assert_eq!(&buf[..n], &payload[..n]),
                        EXITLESS_ERR_CLOSED => assert_eq!(n, 0),
                        other => panic!("read returned {other}"),
                    }
                });
                entered.wait();
                // SAFETY: close keeps the handle valid for the racing read.
                assert_eq!(unsafe { exitless_reader_close(r.get()) }, EXITLESS_OK);
            });
            // SAFETY: the reading thread is joined; freed once.
            unsafe { exitless_reader_free(r.get()) };
        }
    }
    let mut res = std::mem::MaybeUninit::<ExitlessResources>::uninit();
    // SAFETY: writable.
    assert_eq!(unsafe { exitless_resources(res.as_mut_ptr()) }, EXITLESS_OK);
    // SAFETY: filled by the call.
    let res = unsafe { res.assume_init() };
    // (The writer test runs beside this one: only readers are this test's alone.)
    assert_eq!(res.readers, 0, "every reader was closed");
}
