//! The C entry points of the bench library: a sealed stream written and read back
//! through them, the plaintext twin, and a failure reported through this library's
//! own last error.

use std::ffi::{CStr, CString};

use exitless_bench::{exitless_bench_read, exitless_bench_write, ExitlessStats};
use exitless_ffi::{
    exitless_last_error_errno, exitless_last_error_message, exitless_options_default, ExitlessOptions,
    EXITLESS_BACKEND_SYNC, EXITLESS_ERR_IO, EXITLESS_OK,
};

const TOTAL: u64 = 3 << 20;

fn sync_options(segment_size: u32) -> ExitlessOptions {
    let mut o = std::mem::MaybeUninit::<ExitlessOptions>::uninit();
    // SAFETY: `o` is writable; exitless_options_default fills every field.
    let o = unsafe {
        assert_eq!(exitless_options_default(o.as_mut_ptr()), EXITLESS_OK);
        o.assume_init()
    };
    ExitlessOptions { backend: EXITLESS_BACKEND_SYNC, segment_size, ..o }
}

fn stats() -> ExitlessStats {
    // SAFETY: ExitlessStats is plain integers, for which all zeros is valid.
    unsafe { std::mem::zeroed() }
}

#[test]
fn a_sealed_stream_reads_back_and_its_plaintext_twin_has_the_same_length() {
    let dir = tempfile::tempdir().unwrap();
    let opts = sync_options(65536);
    let sealed = CString::new(dir.path().join("sealed").to_str().unwrap()).unwrap();
    let plain = CString::new(dir.path().join("plain").to_str().unwrap()).unwrap();
    let (mut w, mut r, mut p) = (stats(), stats(), stats());
    // SAFETY: NUL-terminated paths, readable options, writable stats.
    unsafe {
        assert_eq!(exitless_bench_write(sealed.as_ptr(), &opts, TOTAL, 1 << 20, 1, &mut w), EXITLESS_OK);
        assert_eq!(exitless_bench_read(sealed.as_ptr(), &opts, 1 << 20, &mut r), EXITLESS_OK);
        assert_eq!(exitless_bench_write(plain.as_ptr(), &opts, TOTAL, 1 << 20, 0, &mut p), EXITLESS_OK);
    }
    assert_eq!((w.plaintext_bytes, r.plaintext_bytes, p.plaintext_bytes), (TOTAL, TOTAL, TOTAL));
    assert!(w.segments > TOTAL / 65536 && r.segments > TOTAL / 65536);
    assert_eq!(p.segments, TOTAL.div_ceil(65536));
    assert_eq!(std::fs::metadata(dir.path().join("plain")).unwrap().len(), TOTAL);
    assert!(std::fs::metadata(dir.path().join("sealed")).unwrap().len() > TOTAL);
    // Null `out`: the counters are not wanted.
    // SAFETY: as above; `out` may be null.
    let status = unsafe { exitless_bench_read(sealed.as_ptr(), &opts, 4096, std::ptr::null_mut()) };
    assert_eq!(status, EXITLESS_OK);
}

#[test]
fn a_failure_is_this_librarys_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = CString::new(dir.path().join("no/such/dir/f").to_str().unwrap()).unwrap();
    let opts = sync_options(4096);
    let mut s = stats();
    // SAFETY: as above.
    let status = unsafe { exitless_bench_write(missing.as_ptr(), &opts, 4096, 4096, 0, &mut s) };
    assert_eq!(status, EXITLESS_ERR_IO);
    assert_eq!(exitless_last_error_errno(), 2, "ENOENT");
    // SAFETY: the message is a NUL-terminated string, valid until the next call here.
    let message = unsafe { CStr::from_ptr(exitless_last_error_message()) }.to_str().unwrap().to_owned();
    assert!(message.contains("cannot create") && message.contains("no/such/dir"), "{message}");
}
