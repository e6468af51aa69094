//! The C ABI's reader over arbitrary files: the bytes go to a temporary file, which is
//! opened with `exitless_reader_open` and read to the end with `exitless_reader_read`,
//! as a C caller would.
//!
//! Input: `selector (1) ‖ chunk (1) ‖ file`. Selector bits 0-1 pick the context (the
//! test vectors' key and contexts, so the seeds open), bit 2 the backend (sync or the
//! modeled OCALL backend at 0 cycles; with `EXITLESS_FUZZ_URING=1` bit 3 picks
//! io_uring where it works), bits 5-6 the queue depth (1, 2, 4, 8). `chunk` sizes the
//! reads (0: 64 KiB) and picks a position to seek back to after the end.
//!
//! The oracle is `exitless_seal::open_to_vec` over the same bytes. Checked: never
//! `EXITLESS_ERR_PANIC` or any other surprise status; when the oracle opens the file,
//! the reader returns exactly its plaintext (also after a seek); when it does not,
//! the reader fails with the same error class, and what it returned before failing
//! is a prefix of the segments that do authenticate, with no unauthenticated byte
//! left in the buffer of the failed read.
#![no_main]

use std::ffi::{CStr, CString};
use std::io::Write;
use std::path::PathBuf;
use std::ptr;
use std::sync::OnceLock;

use exitless_ffi::*;
use exitless_fuzz::{context_of, data_key, KEY};
use exitless_seal::{open_to_vec, Decryptor, ErrorKind, TAG_LEN};
use libfuzzer_sys::fuzz_target;

const SENTINEL: u8 = 0xa5;

/// One file per fuzzing process, on tmpfs where there is one.
fn path() -> &'static (PathBuf, CString) {
    static PATH: OnceLock<(PathBuf, CString)> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let p = dir.join(format!("exitless-fuzz-ffi-{}", std::process::id()));
        let c = CString::new(p.to_str().expect("UTF-8 temp path")).expect("no NUL");
        (p, c)
    })
}

fn uring_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        std::env::var_os("EXITLESS_FUZZ_URING").is_some_and(|v| v == "1") && exitless_uring_available() == 0
    })
}

fn last_error() -> String {
    // SAFETY: the message pointer is valid until the next exitless call on this thread.
    unsafe { CStr::from_ptr(exitless_last_error_message()) }.to_string_lossy().into_owned()
}

fn status_of(kind: ErrorKind) -> ExitlessStatus {
    match kind {
        ErrorKind::Format => EXITLESS_ERR_FORMAT,
        ErrorKind::Integrity => EXITLESS_ERR_INTEGRITY,
        ErrorKind::InvalidArgument => EXITLESS_ERR_INVALID_ARGUMENT,
    }
}

/// The plaintext of the segments that authenticate, from segment 0 up to the first
/// that does not (what a sequential reader may return before it fails).
fn authentic_prefix(file: &[u8], context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(dec) = Decryptor::new(&data_key(), file, context) else { return out };
    let Ok(g) = dec.geometry(file.len() as u64) else { return out };
    let layout = dec.layout();
    for index in 0..g.segments {
        let last = index == g.final_index();
        let len = if last { g.final_len } else { layout.capacity(index) + TAG_LEN };
        let start = layout.offset(index) as usize;
        let mut seg = file[start..start + len].to_vec();
        match dec.open_in_place(index, last, &mut seg) {
            Ok(n) => out.extend_from_slice(&seg[..n]),
            Err(_) => break,
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [selector, chunk, ref file @ ..] = *data else { return };
    let context = context_of(selector);
    let (p, cpath) = path();
    {
        let mut f = std::fs::File::create(p).expect("create the input file");
        f.write_all(file).expect("write the input file");
    }

    let mut opts = std::mem::MaybeUninit::<ExitlessOptions>::uninit();
    // SAFETY: `opts` is writable; the call fills every field.
    assert_eq!(unsafe { exitless_options_default(opts.as_mut_ptr()) }, EXITLESS_OK);
    // SAFETY: initialized by the call above.
    let mut opts = unsafe { opts.assume_init() };
    opts.backend = if selector & 8 != 0 && uring_allowed() {
        EXITLESS_BACKEND_URING
    } else if selector & 4 != 0 {
        EXITLESS_BACKEND_OCALL
    } else {
        EXITLESS_BACKEND_SYNC
    };
    opts.ocall_cycles = 0;
    opts.queue_depth = 1 << ((selector >> 5) & 3);
    opts.direct = 0;

    let oracle = open_to_vec(&data_key(), file, context);

    let mut reader = ptr::null_mut();
    // SAFETY: every pointer is valid for its length for the duration of the call.
    let st = unsafe {
        exitless_reader_open(
            cpath.as_ptr(),
            KEY.as_ptr(),
            KEY.len(),
            context.as_ptr(),
            context.len(),
            &opts,
            &mut reader,
        )
    };
    if st != EXITLESS_OK {
        assert!(reader.is_null());
        let msg = last_error();
        match &oracle {
            Ok(_) => panic!("reader_open failed ({st}: {msg}) on a file that opens"),
            Err(e) => assert_eq!(st, status_of(e.kind()), "reader_open: {msg}; oracle: {e}"),
        }
        return;
    }

    let chunk_len = if chunk == 0 { 65536 } else { usize::from(chunk) * 37 };
    let mut size = 0u64;
    // SAFETY: `reader` is live; `size` is writable.
    assert_eq!(unsafe { exitless_reader_size(reader, &mut size) }, EXITLESS_OK);
    let mut got = Vec::new();
    let mut buf = vec![SENTINEL; chunk_len];
    let status = loop {
        buf.fill(SENTINEL);
        let mut n = usize::MAX;
        // SAFETY: `reader` is live; `buf` has `buf.len()` writable bytes; `n` is writable.
        let st = unsafe { exitless_reader_read(reader, buf.as_mut_ptr(), buf.len(), &mut n) };
        if st != EXITLESS_OK {
            assert_eq!(n, usize::MAX, "a failed read reported a length");
            assert!(buf.iter().all(|&b| b == 0 || b == SENTINEL), "a failed read left bytes in the buffer");
            break st;
        }
        assert!(n <= buf.len());
        if n == 0 {
            break EXITLESS_OK;
        }
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() as u64 <= size, "read past the stream's size");
    };

    match &oracle {
        Ok(plaintext) => {
            assert_eq!(status, EXITLESS_OK, "read failed on a file that opens: {}", last_error());
            assert_eq!(size, plaintext.len() as u64);
            assert!(got == *plaintext, "the reader returned other bytes than the plaintext");
            // Seek back and read again: random access gives the same bytes.
            let target = (usize::from(chunk) * 131) % (plaintext.len() + 1);
            let mut pos = u64::MAX;
            // SAFETY: `reader` is live; `pos` is writable.
            let st = unsafe { exitless_reader_seek(reader, target as i64, 0, &mut pos) };
            assert_eq!((st, pos), (EXITLESS_OK, target as u64));
            let mut rest = vec![0u8; plaintext.len() - target + 1];
            let mut n = 0usize;
            // SAFETY: as above.
            let st = unsafe { exitless_reader_read(reader, rest.as_mut_ptr(), rest.len(), &mut n) };
            assert_eq!(st, EXITLESS_OK, "{}", last_error());
            // A read may stop short; whatever it returns is the plaintext from there.
            assert!(n <= plaintext.len() - target);
            assert_eq!(&rest[..n], &plaintext[target..target + n]);
        }
        Err(e) => {
            assert_ne!(status, EXITLESS_OK, "the reader returned a whole stream the oracle refuses ({e})");
            assert_eq!(status, status_of(e.kind()), "read: {}; oracle: {e}", last_error());
            let authentic = authentic_prefix(file, context);
            assert!(authentic.starts_with(&got), "returned bytes that are not authenticated plaintext");
        }
    }
    // SAFETY: `reader` is live and not used again.
    unsafe { exitless_reader_free(reader) };
});
