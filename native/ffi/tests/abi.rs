//! The C ABI as a C caller sees it: status codes, the last-error message and errno,
//! null and bad arguments, a failing disk, tampering, and handle life cycles.

use std::ffi::{CStr, CString};
use std::ptr;

use exitless_ffi::*;

const KEY: [u8; 32] = [0x5c; 32];

fn last_error() -> String {
    // SAFETY: the message pointer is valid until the next call on this thread.
    unsafe { CStr::from_ptr(exitless_last_error_message()) }.to_string_lossy().into_owned()
}

fn options(segment_size: u32) -> ExitlessOptions {
    let mut o = std::mem::MaybeUninit::<ExitlessOptions>::uninit();
    // SAFETY: `o` is writable; the call fills every field.
    assert_eq!(unsafe { exitless_options_default(o.as_mut_ptr()) }, EXITLESS_OK);
    // SAFETY: initialized by the call above.
    let mut o = unsafe { o.assume_init() };
    o.segment_size = segment_size;
    o
}

fn open_writer(path: &str, ctx: &[u8], seg: u32) -> Result<*mut ExitlessWriter, (i32, String)> {
    let p = CString::new(path).unwrap();
    let mut w = ptr::null_mut();
    let o = options(seg);
    // SAFETY: every pointer is valid for the stated lengths.
    let st =
        unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ctx.as_ptr(), ctx.len(), &o, &mut w) };
    if st == EXITLESS_OK {
        Ok(w)
    } else {
        Err((st, last_error()))
    }
}

fn open_reader(path: &str, key: &[u8], ctx: &[u8]) -> Result<*mut ExitlessReader, (i32, String)> {
    let p = CString::new(path).unwrap();
    let mut r = ptr::null_mut();
    // SAFETY: every pointer is valid for the stated lengths.
    let st = unsafe {
        exitless_reader_open(
            p.as_ptr(),
            key.as_ptr(),
            key.len(),
            ctx.as_ptr(),
            ctx.len(),
            ptr::null(),
            &mut r,
        )
    };
    if st == EXITLESS_OK {
        Ok(r)
    } else {
        Err((st, last_error()))
    }
}

fn write_file(path: &str, data: &[u8], seg: u32) {
    let w = open_writer(path, b"ctx", seg).unwrap();
    // SAFETY: `w` is live; `data` is readable.
    unsafe {
        assert_eq!(exitless_writer_write(w, data.as_ptr(), data.len()), EXITLESS_OK);
        assert_eq!(exitless_writer_finish(w), EXITLESS_OK);
        exitless_writer_free(w);
    }
}

#[test]
fn round_trip_with_seek_and_tell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    write_file(&path, &data, 4096);
    let r = open_reader(&path, &KEY, b"ctx").unwrap();
    let mut size = 0u64;
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1000];
    let mut n = 0usize;
    // SAFETY: `r` is live; the out pointers and `buf` are valid.
    unsafe {
        assert_eq!(exitless_reader_size(r, &mut size), EXITLESS_OK);
        assert_eq!(size, data.len() as u64);
        assert_eq!(exitless_reader_seek(r, 50_000, 0, &mut pos), EXITLESS_OK);
        assert_eq!(exitless_reader_read(r, buf.as_mut_ptr(), buf.len(), &mut n), EXITLESS_OK);
        assert_eq!(&buf[..n], &data[50_000..51_000]);
        assert_eq!(exitless_reader_tell(r, &mut pos), EXITLESS_OK);
        assert_eq!(pos, 51_000);
        assert_eq!(exitless_reader_seek(r, -10, 2, &mut pos), EXITLESS_OK);
        assert_eq!(exitless_reader_read(r, buf.as_mut_ptr(), buf.len(), &mut n), EXITLESS_OK);
        assert_eq!(&buf[..n], &data[data.len() - 10..]);
        assert_eq!(exitless_reader_read(r, buf.as_mut_ptr(), buf.len(), &mut n), EXITLESS_OK);
        assert_eq!(n, 0, "end of stream");
        assert_eq!(exitless_reader_seek(r, -1, 0, ptr::null_mut()), EXITLESS_ERR_INVALID_ARGUMENT);
        assert_eq!(exitless_reader_seek(r, 0, 7, ptr::null_mut()), EXITLESS_ERR_INVALID_ARGUMENT);
        exitless_reader_free(r);
    }
}

#[test]
fn null_and_bad_arguments_are_reported_not_crashed() {
    let mut w = ptr::null_mut();
    // SAFETY: deliberately null pointers; the ABI must check them.
    unsafe {
        assert_eq!(
            exitless_writer_open(ptr::null(), KEY.as_ptr(), 32, ptr::null(), 0, ptr::null(), &mut w),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("path is null"));
        let p = CString::new("/tmp/never-created-by-exitless").unwrap();
        assert_eq!(
            exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 31, ptr::null(), 0, ptr::null(), &mut w),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("32 bytes"), "{}", last_error());
        assert_eq!(
            exitless_writer_open(p.as_ptr(), ptr::null(), 32, ptr::null(), 0, ptr::null(), &mut w),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        let mut o = options(100);
        assert_eq!(
            exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("segment size"));
        o = options(4096);
        o.algorithm = 9;
        assert_eq!(
            exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("algorithm"));
        assert_eq!(exitless_writer_write(ptr::null(), KEY.as_ptr(), 1), EXITLESS_ERR_INVALID_ARGUMENT);
        assert_eq!(
            exitless_reader_read(ptr::null(), ptr::null_mut(), 0, ptr::null_mut()),
            EXITLESS_ERR_INVALID_ARGUMENT
        );
        exitless_writer_free(ptr::null_mut());
        exitless_reader_free(ptr::null_mut());
    }
    assert!(!std::path::Path::new("/tmp/never-created-by-exitless").exists());
}

#[test]
fn io_errors_carry_errno_and_path() {
    let err = open_reader("/nonexistent-dir/x", &KEY, b"").unwrap_err();
    assert_eq!(err.0, EXITLESS_ERR_IO);
    assert_eq!(exitless_last_error_errno(), 2, "ENOENT");
    assert!(err.1.contains("/nonexistent-dir/x"), "{}", err.1);
}

#[test]
fn a_full_disk_is_reported_and_poisons_the_writer() {
    // /dev/full fails every write with ENOSPC. Writes are pipelined, so the error
    // surfaces at the latest when the writer finishes; after it, the writer is done.
    let w = open_writer("/dev/full", b"", 4096).unwrap();
    let data = vec![7u8; 10_000];
    // SAFETY: `w` is live; `data` is readable.
    unsafe {
        let mut st = exitless_writer_write(w, data.as_ptr(), data.len());
        if st == EXITLESS_OK {
            st = exitless_writer_finish(w);
        }
        assert_eq!(st, EXITLESS_ERR_IO);
        assert_eq!(exitless_last_error_errno(), 28, "ENOSPC");
        assert!(last_error().contains("/dev/full") && last_error().contains("segment 0"), "{}", last_error());
        assert_eq!(exitless_writer_write(w, data.as_ptr(), 1), EXITLESS_ERR_CLOSED);
        assert!(last_error().contains("earlier write failed"));
        assert_eq!(exitless_writer_finish(w), EXITLESS_ERR_CLOSED);
        exitless_writer_free(w);
    }
}

#[test]
fn tampering_wrong_key_and_unfinished_writers_fail_with_integrity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    write_file(&path, &[1u8; 20_000], 4096);
    let (st, msg) = open_reader(&path, &[0x5d; 32], b"ctx").unwrap_err();
    assert_eq!(st, EXITLESS_ERR_INTEGRITY);
    assert!(msg.contains(&path) && msg.contains("segment"), "{msg}");
    assert!(!msg.contains("5c5c") && !msg.contains("5d5d"), "no key bytes in messages");
    assert_eq!(open_reader(&path, &KEY, b"other").unwrap_err().0, EXITLESS_ERR_INTEGRITY);

    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5000] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let r = open_reader(&path, &KEY, b"ctx").unwrap();
    let mut buf = vec![0u8; 20_000];
    let mut n = 12345usize;
    // SAFETY: `r` is live; `buf` and `n` are writable.
    unsafe {
        assert_eq!(exitless_reader_read(r, buf.as_mut_ptr(), buf.len(), &mut n), EXITLESS_ERR_INTEGRITY);
        assert_eq!(n, 12345, "nothing is reported as read on error");
        exitless_reader_free(r);
    }

    // A writer freed without finish leaves a file that never reads back whole.
    let w = open_writer(&path, b"ctx", 4096).unwrap();
    // SAFETY: `w` is live.
    unsafe {
        assert_eq!(exitless_writer_write(w, [3u8; 9000].as_ptr(), 9000), EXITLESS_OK);
        exitless_writer_free(w);
    }
    assert_eq!(open_reader(&path, &KEY, b"ctx").unwrap_err().0, EXITLESS_ERR_INTEGRITY);
}

#[test]
fn inspect_and_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    write_file(&path, &[9u8; 5000], 1024);
    let mut info = ExitlessFileInfo::default();
    let p = CString::new(path.as_str()).unwrap();
    // SAFETY: valid string and out pointer.
    assert_eq!(unsafe { exitless_inspect(p.as_ptr(), &mut info) }, EXITLESS_OK);
    assert_eq!((info.version, info.algorithm, info.segment_size, info.plaintext_len), (1, 1, 1024, 5000));

    let pt = vec![4u8; 3000];
    let mut sealed_len = 0u64;
    // SAFETY: out pointer valid.
    assert_eq!(unsafe { exitless_sealed_len(3000, 1024, &mut sealed_len) }, EXITLESS_OK);
    let mut sealed = vec![0u8; sealed_len as usize];
    let mut back = vec![0u8; 3000];
    let mut n = 0usize;
    let o = options(1024);
    // SAFETY: every buffer is valid for its length.
    unsafe {
        assert_eq!(
            exitless_seal_buffer(
                KEY.as_ptr(),
                32,
                ptr::null(),
                0,
                &o,
                pt.as_ptr(),
                3000,
                sealed.as_mut_ptr(),
                10,
                &mut n
            ),
            EXITLESS_ERR_INVALID_ARGUMENT,
            "output too small"
        );
        assert_eq!(
            exitless_seal_buffer(
                KEY.as_ptr(),
                32,
                ptr::null(),
                0,
                &o,
                pt.as_ptr(),
                3000,
                sealed.as_mut_ptr(),
                sealed.len(),
                &mut n
            ),
            EXITLESS_OK
        );
        assert_eq!(n as u64, sealed_len);
        assert_eq!(
            exitless_open_buffer(
                KEY.as_ptr(),
                32,
                ptr::null(),
                0,
                sealed.as_ptr(),
                n,
                back.as_mut_ptr(),
                3000,
                &mut n
            ),
            EXITLESS_OK
        );
        assert_eq!(back, pt);
        sealed[2000] ^= 1;
        back.fill(0);
        assert_eq!(
            exitless_open_buffer(
                KEY.as_ptr(),
                32,
                ptr::null(),
                0,
                sealed.as_ptr(),
                sealed.len(),
                back.as_mut_ptr(),
                3000,
                &mut n
            ),
            EXITLESS_ERR_INTEGRITY
        );
        assert!(back.iter().all(|&b| b == 0), "no plaintext left after a failed open");
    }
}

#[test]
fn handles_are_usable_from_several_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f").to_str().unwrap().to_owned();
    let w = open_writer(&path, b"ctx", 4096).unwrap() as usize;
    std::thread::scope(|s| {
        for t in 0..4u8 {
            s.spawn(move || {
                for _ in 0..100 {
                    let chunk = [t; 333];
                    // SAFETY: the handle is live for the whole scope; calls are serialized inside.
                    let status = unsafe { exitless_writer_write(w as *const _, chunk.as_ptr(), 333) };
                    assert_eq!(status, EXITLESS_OK);
                }
            });
        }
    });
    let mut pos = 0u64;
    // SAFETY: live handle.
    unsafe {
        assert_eq!(exitless_writer_tell(w as *const _, &mut pos), EXITLESS_OK);
        assert_eq!(pos, 4 * 100 * 333);
        assert_eq!(exitless_writer_finish(w as *const _), EXITLESS_OK);
        exitless_writer_free(w as *mut _);
    }
    let r = open_reader(&path, &KEY, b"ctx").unwrap();
    let mut size = 0;
    // SAFETY: live handle.
    unsafe {
        exitless_reader_size(r, &mut size);
        exitless_reader_free(r);
    }
    assert_eq!(size, 4 * 100 * 333);
}

#[test]
fn envelope_makes_version_2_and_inspect_returns_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2").to_str().unwrap().to_owned();
    let p = CString::new(path.as_str()).unwrap();
    let env: Vec<u8> = (0..59u8).collect();
    let mut o = options(4096);
    o.envelope = env.as_ptr();
    o.envelope_len = env.len();
    o.has_key_id = 1;
    o.key_id = [0x33; 16];
    let mut w = ptr::null_mut();
    // SAFETY: every pointer is valid for the stated lengths.
    unsafe {
        assert_eq!(
            exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w),
            EXITLESS_OK
        );
        assert_eq!(exitless_writer_write(w, [3u8; 9000].as_ptr(), 9000), EXITLESS_OK);
        assert_eq!(exitless_writer_finish(w), EXITLESS_OK);
        exitless_writer_free(w);
    }
    let mut expected = 0u64;
    // SAFETY: out pointer valid.
    assert_eq!(unsafe { exitless_sealed_len_envelope(9000, 4096, 59, &mut expected) }, EXITLESS_OK);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), expected);
    let mut info = ExitlessFileInfo::default();
    // SAFETY: valid string and out pointer.
    assert_eq!(unsafe { exitless_inspect(p.as_ptr(), &mut info) }, EXITLESS_OK);
    assert_eq!((info.version, info.header_len, info.envelope_len, info.key_id), (2, 131, 59, [0x33; 16]));
    assert_eq!(&info.envelope[..59], &env[..]);
    assert!(info.envelope[59..].iter().all(|&b| b == 0));
    let r = open_reader(&path, &KEY, b"").unwrap();
    // SAFETY: live handle.
    unsafe { exitless_reader_free(r) };

    // A version-1 file reports no envelope.
    write_file(&path, &[9u8; 100], 1024);
    // SAFETY: valid string and out pointer.
    assert_eq!(unsafe { exitless_inspect(p.as_ptr(), &mut info) }, EXITLESS_OK);
    assert_eq!((info.version, info.header_len, info.envelope_len), (1, 68, 0));

    // Bad envelopes are argument errors with a message.
    let big = vec![1u8; EXITLESS_MAX_ENVELOPE_LEN + 1];
    for (ptr_, len, needle) in [(big.as_ptr(), big.len(), "at most 1024"), (ptr::null(), 5, "null")] {
        let mut o = options(4096);
        o.envelope = ptr_;
        o.envelope_len = len;
        // SAFETY: the bad pointer is never read (rejected by length or as null).
        let st = unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w) };
        assert_eq!(st, EXITLESS_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains(needle), "{}", last_error());
    }
    let mut o = options(256);
    o.envelope = big.as_ptr();
    o.envelope_len = 200;
    // SAFETY: valid pointers.
    let st = unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w) };
    assert_eq!(st, EXITLESS_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("segment size"), "{}", last_error());
    let mut n = 0u64;
    // SAFETY: out pointer valid.
    assert_eq!(unsafe { exitless_sealed_len_envelope(0, 4096, 1025, &mut n) }, EXITLESS_ERR_INVALID_ARGUMENT);
}

#[test]
fn a_forged_completion_is_its_own_status_with_a_message_and_no_errno() {
    if exitless_uring_available() != EXITLESS_OK {
        eprintln!("skipped: io_uring is not available here ({})", last_error());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged").to_str().unwrap().to_owned();
    let p = CString::new(path.as_str()).unwrap();
    let forge = |spec: &str, backend: u8| {
        let spec = CString::new(spec).unwrap();
        let mut o = options(4096);
        o.backend = backend;
        (o, spec)
    };
    // A writer whose second segment's completion claims one byte more than was
    // written (fault injection `forge`): the validator rejects it.
    let (mut o, spec) = forge("forge@segment=1", EXITLESS_BACKEND_URING);
    o.faults = spec.as_ptr();
    let mut w = ptr::null_mut();
    // SAFETY: every pointer is valid for the stated lengths; `spec` outlives the call.
    let st = unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w) };
    assert_eq!(st, EXITLESS_OK, "{}", last_error());
    let data = vec![7u8; 20_000];
    // SAFETY: `w` is live; `data` is readable.
    unsafe {
        let mut st = exitless_writer_write(w, data.as_ptr(), data.len());
        if st == EXITLESS_OK {
            st = exitless_writer_finish(w);
        }
        assert_eq!(st, EXITLESS_ERR_REJECTED_COMPLETION, "{}", last_error());
        assert_eq!(exitless_last_error_errno(), 0, "no errno: this is no disk failure");
        let message = last_error();
        assert!(message.contains(&path) && message.contains("segment 1"), "{message}");
        assert!(message.contains("rejected a completion from the kernel"), "{message}");
        assert_eq!(exitless_writer_write(w, data.as_ptr(), 1), EXITLESS_ERR_CLOSED);
        exitless_writer_free(w);
    }
    assert!(open_reader(&path, &KEY, b"").is_err(), "the file never reads back whole");

    // A reader whose first read is forged.
    write_file(&path, &data, 4096);
    let (mut o, spec) = forge("forge@read=0", EXITLESS_BACKEND_URING);
    o.faults = spec.as_ptr();
    let mut r = ptr::null_mut();
    // SAFETY: every pointer is valid for the stated lengths.
    let st = unsafe { exitless_reader_open(p.as_ptr(), KEY.as_ptr(), 32, b"ctx".as_ptr(), 3, &o, &mut r) };
    assert_eq!(st, EXITLESS_ERR_REJECTED_COMPLETION, "{}", last_error());
    assert!(last_error().contains(&path), "{}", last_error());

    // No other backend takes a forgery: its completions pass no validator.
    let (mut o, spec) = forge("forge@write=0", EXITLESS_BACKEND_SYNC);
    o.faults = spec.as_ptr();
    // SAFETY: as above.
    let st = unsafe { exitless_writer_open(p.as_ptr(), KEY.as_ptr(), 32, ptr::null(), 0, &o, &mut w) };
    assert_eq!(st, EXITLESS_ERR_INVALID_ARGUMENT, "{}", last_error());
    assert!(last_error().contains("forge"), "{}", last_error());
}
