//! The option and result structs of the ABI, and their translation.

use std::ffi::{c_char, CStr};

use exitless_io::faults::{self, Rule};
use exitless_io::{BackendKind, FaultPlan, OcallModel};
use exitless_seal::{Algorithm, KeyId, StreamParams, MAX_ENVELOPE_LEN};
use exitless_spill::{BackendChoice, SpillOptions, StreamStats};

use crate::status::{guard, ExitlessStatus, FfiError, FfiResult};

/// AES-256-GCM (algorithm id 1, the default).
pub const EXITLESS_AES_256_GCM: u8 = 1;
/// ChaCha20-Poly1305 (algorithm id 2).
pub const EXITLESS_CHACHA20_POLY1305: u8 = 2;
/// Default ciphertext segment size: 64 KiB.
pub const EXITLESS_DEFAULT_SEGMENT_SIZE: u32 = 65536;
/// Backend: io_uring if it works here, else synchronous IO.
pub const EXITLESS_BACKEND_AUTO: u8 = 0;
/// Backend: io_uring with SQPOLL and registered untrusted buffers.
pub const EXITLESS_BACKEND_URING: u8 = 1;
/// Backend: one modeled enclave exit per pread/pwrite (Occlum hostfs today).
pub const EXITLESS_BACKEND_OCALL: u8 = 2;
/// Backend: host worker threads with modeled-exit fallback (SGX SDK switchless).
pub const EXITLESS_BACKEND_SWITCHLESS: u8 = 3;
/// Backend: plain synchronous pread/pwrite.
pub const EXITLESS_BACKEND_SYNC: u8 = 4;
/// Largest key envelope (format version 2) a header carries, in bytes.
pub const EXITLESS_MAX_ENVELOPE_LEN: usize = 1024;
const _: () = assert!(EXITLESS_MAX_ENVELOPE_LEN == MAX_ENVELOPE_LEN);

/// Largest IO a stream makes: a long stream's consecutive segments share writes and
/// reads of up to this many bytes (larger segments travel in IOs of this size).
pub const EXITLESS_IO_SIZE: usize = 1_048_576;
const _: () = assert!(EXITLESS_IO_SIZE == exitless_spill::memory::IO_SIZE);
/// A stream coalesces segments into `EXITLESS_IO_SIZE` IOs from this file offset on.
pub const EXITLESS_COALESCE_AFTER: u64 = 1_048_576;
const _: () = assert!(EXITLESS_COALESCE_AFTER == exitless_spill::memory::COALESCE_AFTER);

/// Largest `ocall_cycles`: 10^7 cycles (~3 ms) per modeled exit, far above any real
/// OCALL (8,200–17,000); more would only make streams crawl.
pub const EXITLESS_MAX_OCALL_CYCLES: i64 = 10_000_000;
const _: () = assert!(EXITLESS_MAX_OCALL_CYCLES as u64 == exitless_io::model::MAX_CYCLES_PER_EXIT);
/// Largest `uring_spin_us`: 10 s.
pub const EXITLESS_MAX_URING_SPIN_US: i64 = 10_000_000;

/// Backend: discards writes (benchmarks of sealing without IO; nothing can be read back).
pub const EXITLESS_BACKEND_NULL: u8 = 5;

/// Options for opening a writer or reader. Start from `exitless_options_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitlessOptions {
    /// Ciphertext segment size in bytes, 256 ..= 2^30 (writers).
    pub segment_size: u32,
    /// `EXITLESS_AES_256_GCM` or `EXITLESS_CHACHA20_POLY1305` (writers).
    pub algorithm: u8,
    /// Non-zero: `key_id` is recorded in the header (writers).
    pub has_key_id: u8,
    /// Key id to record in the header (which data key sealed the stream).
    pub key_id: [u8; 16],
    /// Non-zero: fsync the file when the writer finishes.
    pub sync_on_finish: u8,
    /// One of the `EXITLESS_BACKEND_*` values.
    pub backend: u8,
    /// O_DIRECT: -1 or 0 page cache (the default: measured faster here on every
    /// backend, docs/BENCHMARKS.md), 1 required (segment sizes of whole 4 KiB blocks).
    pub direct: i8,
    /// IOs in flight per stream, 1 ..= 1024; each takes a buffer of the segment size
    /// (at most 1 MiB: larger segments travel in several IOs), and one stream's
    /// buffers may total at most 256 MiB.
    pub queue_depth: u32,
    /// Modeled cycles per enclave exit (ocall, switchless), 0 ..= `EXITLESS_MAX_OCALL_CYCLES`;
    /// -1 takes EXITLESS_OCALL_CYCLES or 8200.
    pub ocall_cycles: i64,
    /// Microseconds an io_uring stream spins for a completion before blocking (an
    /// exit); -1 takes EXITLESS_URING_SPIN_US or 100.
    pub uring_spin_us: i64,
    /// io_uring's SQPOLL kernel thread (submissions without a system call, at the
    /// cost of a core it keeps busy while streams run): 1 on, 0 off, -1 takes
    /// EXITLESS_URING_SQPOLL, else on where 4 or more CPUs are available. Without it
    /// every `io_uring_enter` is an exit, and no call returns with its IO in flight.
    pub uring_sqpoll: i8,
    /// Non-zero (the default): writes of two or more segments are sealed by the
    /// calling thread and the process-wide runtime's vCPUs together (`EXITLESS_VCPUS`
    /// vCPUs, default one per core, started on first use); a stream whose IO is the
    /// bottleneck seals on the calling thread alone. Zero: everything on the caller's thread.
    pub parallel: u8,
    /// Non-zero: use `fixed_salt` and `fixed_nonce_prefix` instead of fresh randomness.
    /// Tests only: streams with the same key, context and randomness share a keystream.
    pub insecure_fixed_randomness: u8,
    /// Salt used when `insecure_fixed_randomness` is set.
    pub fixed_salt: [u8; 32],
    /// Nonce prefix used when `insecure_fixed_randomness` is set.
    pub fixed_nonce_prefix: [u8; 7],
    /// Writers: the key envelope (the KMS's wrapped data key, 1 to
    /// `EXITLESS_MAX_ENVELOPE_LEN` bytes) to carry in the header, which makes the file
    /// format version 2; set `key_id` to the id of the KMS key that wrapped it. Null
    /// with `envelope_len` 0 (the default): format version 1. Must be readable for
    /// `envelope_len` bytes during the call that takes these options; copied there.
    /// Readers ignore it (the header says).
    pub envelope: *const u8,
    /// Length of `envelope` in bytes; 0 for none.
    pub envelope_len: usize,
    /// Tests only: a NUL-terminated fault-injection spec such as
    /// `"enospc@segment=7"` or `"short@write=*,eintr@read=*"` (rules `FAULT@TARGET`;
    /// FAULT: enospc, eio, eintr, short, forge; TARGET: segment=N, write=N, read=N,
    /// write=*, read=*, fsync): the stream's backend makes that operation fail, be
    /// interrupted or transfer only part of its bytes, or (forge, io_uring only, not
    /// fsync) forges its completion so that the validator rejects it
    /// (`EXITLESS_ERR_REJECTED_COMPLETION`; docs/HARDENING.md). Null (the default):
    /// none. Read during the call that takes these options.
    pub faults: *const c_char,
}

/// Header facts of a sealed file, read without a key.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitlessFileInfo {
    /// Format version.
    pub version: u8,
    /// Algorithm id.
    pub algorithm: u8,
    /// Key id from the header (all zero when none was recorded).
    pub key_id: [u8; 16],
    /// Ciphertext segment size.
    pub segment_size: u32,
    /// File length in bytes.
    pub file_len: u64,
    /// Number of segments the file length implies.
    pub segments: u64,
    /// Plaintext length the file length implies (not authenticated).
    pub plaintext_len: u64,
    /// Header length in bytes: 68 (version 1) or 72 + `envelope_len` (version 2).
    pub header_len: u32,
    /// Length of the key envelope (format version 2); 0 for version 1.
    pub envelope_len: u32,
    /// The key envelope, `envelope_len` bytes (the rest zero). Not authenticated:
    /// a wrong envelope yields a wrong key, and the stream then fails to open.
    pub envelope: [u8; 1024],
}

impl Default for ExitlessFileInfo {
    fn default() -> Self {
        Self {
            version: 0,
            algorithm: 0,
            key_id: [0; 16],
            segment_size: 0,
            file_len: 0,
            segments: 0,
            plaintext_len: 0,
            header_len: 0,
            envelope_len: 0,
            envelope: [0; EXITLESS_MAX_ENVELOPE_LEN],
        }
    }
}

/// What a backend did: exitless-io's `Counters`, the one definition of these
/// counters, named `ExitlessCounters` in C (cbindgen.toml renames it).
pub use exitless_io::Counters;

/// What a stream did: its backend's counters (`io`; `ExitlessCounters`) plus its
/// own system calls and what it sealed or opened. The counters start the struct,
/// so every field lies where it lay when they were spelled out here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitlessStats {
    /// The backend's counters (`ExitlessCounters`: exits, system calls, bytes, …).
    pub io: Counters,
    /// System calls of the stream itself, outside its backend (fcntl to turn to
    /// O_DIRECT, lseek for holes), each an exit in an enclave.
    pub stream_syscalls: u64,
    /// Segments sealed or opened.
    pub segments: u64,
    /// Plaintext bytes written or read.
    pub plaintext_bytes: u64,
    /// The backend in use (`EXITLESS_BACKEND_*`, never AUTO).
    pub backend: u8,
    /// Non-zero when the file uses O_DIRECT.
    pub direct: u8,
}

pub(crate) const DEFAULT_OPTIONS: ExitlessOptions = ExitlessOptions {
    segment_size: EXITLESS_DEFAULT_SEGMENT_SIZE,
    algorithm: EXITLESS_AES_256_GCM,
    has_key_id: 0,
    key_id: [0; 16],
    sync_on_finish: 0,
    backend: EXITLESS_BACKEND_AUTO,
    direct: -1,
    queue_depth: 8,
    ocall_cycles: -1,
    uring_spin_us: -1,
    uring_sqpoll: -1,
    parallel: 1,
    insecure_fixed_randomness: 0,
    fixed_salt: [0; 32],
    fixed_nonce_prefix: [0; 7],
    envelope: std::ptr::null(),
    envelope_len: 0,
    faults: std::ptr::null(),
};

/// Options as read from the caller: the struct, plus its envelope copied in.
pub(crate) struct Options {
    raw: ExitlessOptions,
    envelope: Option<Vec<u8>>,
    faults: Option<Vec<Rule>>,
}

/// Reads `options` (null: the defaults), copying the envelope it points to.
///
/// # Safety
/// `options` is null or readable, its `envelope` is null or readable for
/// `envelope_len` bytes, and its `faults` is null or a NUL-terminated string.
pub(crate) unsafe fn read_options(options: *const ExitlessOptions) -> FfiResult<Options> {
    // SAFETY: null or readable by the caller's contract; `as_ref` handles null.
    let raw = match unsafe { options.as_ref() } {
        Some(o) => *o,
        None => DEFAULT_OPTIONS,
    };
    let envelope = match raw.envelope_len {
        0 => None,
        n if n > EXITLESS_MAX_ENVELOPE_LEN => {
            return Err(FfiError::invalid(format!(
                "envelope is {n} bytes; a key envelope is at most {EXITLESS_MAX_ENVELOPE_LEN} bytes"
            )))
        }
        // SAFETY: readable for `envelope_len` bytes by the caller's contract; null is checked.
        n => Some(unsafe { crate::args::bytes(raw.envelope, n, "envelope") }?.to_vec()),
    };
    let faults = if raw.faults.is_null() {
        None
    } else {
        // SAFETY: non-null, NUL-terminated and readable during the call by the contract.
        let spec = unsafe { CStr::from_ptr(raw.faults) }
            .to_str()
            .map_err(|_| FfiError::invalid("faults is not valid UTF-8"))?;
        Some(faults::parse(spec).map_err(FfiError::invalid)?)
    };
    Ok(Options { raw, envelope, faults })
}

pub(crate) fn params(options: &Options) -> FfiResult<StreamParams> {
    let o = &options.raw;
    let algorithm = Algorithm::from_id(o.algorithm)
        .ok_or_else(|| FfiError::invalid(format!("unknown algorithm id {}", o.algorithm)))?;
    let key_id = if o.has_key_id != 0 { KeyId(o.key_id) } else { KeyId::NONE };
    let params =
        StreamParams { algorithm, segment_size: o.segment_size, key_id, envelope: options.envelope.clone() };
    params.layout().map_err(|e| {
        FfiError::invalid(format!(
            "segment size {} (header {} bytes): {e}",
            o.segment_size,
            params.header_len()
        ))
    })?;
    Ok(params)
}

const BACKENDS: [(u8, BackendKind); 5] = [
    (EXITLESS_BACKEND_URING, BackendKind::Uring),
    (EXITLESS_BACKEND_OCALL, BackendKind::Ocall),
    (EXITLESS_BACKEND_SWITCHLESS, BackendKind::Switchless),
    (EXITLESS_BACKEND_SYNC, BackendKind::Sync),
    (EXITLESS_BACKEND_NULL, BackendKind::Null),
];

pub(crate) fn spill_options(opts: &Options) -> FfiResult<SpillOptions> {
    let options = &opts.raw;
    let backend = match options.backend {
        EXITLESS_BACKEND_AUTO => BackendChoice::Auto,
        id => BACKENDS
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, k)| BackendChoice::Fixed(*k))
            .ok_or_else(|| FfiError::invalid(format!("unknown backend id {id}")))?,
    };
    let direct = match options.direct {
        -1 => None,
        0 => Some(false),
        1 => Some(true),
        d => return Err(FfiError::invalid(format!("direct must be -1, 0 or 1, got {d}"))),
    };
    let mut ocall_model = OcallModel::from_env();
    match options.ocall_cycles {
        -1 => {}
        c if (0..=EXITLESS_MAX_OCALL_CYCLES).contains(&c) => ocall_model.cycles_per_exit = c as u64,
        c => {
            return Err(FfiError::invalid(format!(
                "ocall_cycles must be 0 to {EXITLESS_MAX_OCALL_CYCLES}, or -1 for the default; got {c}"
            )))
        }
    }
    let uring_spin = match options.uring_spin_us {
        -1 => None,
        us if (0..=EXITLESS_MAX_URING_SPIN_US).contains(&us) => {
            Some(std::time::Duration::from_micros(us as u64))
        }
        us => {
            return Err(FfiError::invalid(format!(
                "uring_spin_us must be 0 to {EXITLESS_MAX_URING_SPIN_US}, or -1 for the default; got {us}"
            )))
        }
    };
    let sqpoll = match options.uring_sqpoll {
        -1 => None,
        0 | 1 => Some(options.uring_sqpoll == 1),
        v => return Err(FfiError::invalid(format!("uring_sqpoll must be -1, 0 or 1; got {v}"))),
    };
    Ok(SpillOptions {
        params: params(opts)?,
        uring: exitless_spill::UringTuning { spin: uring_spin, sqpoll, sq_idle_ms: None },
        runtime: if options.parallel != 0 { exitless_spill::runtime::global() } else { None },
        backend,
        queue_depth: options.queue_depth as usize,
        direct,
        sync: options.sync_on_finish != 0,
        ocall_model,
        insecure_fixed_randomness: (options.insecure_fixed_randomness != 0)
            .then_some((options.fixed_salt, options.fixed_nonce_prefix)),
        // A fresh plan per call: each stream counts its own operations from 0.
        faults: opts.faults.clone().map(|rules| std::sync::Arc::new(FaultPlan::new(rules))),
    })
}

// The counters begin the stats, as plain u64s: a C or cffi caller that reads
// `io.exits` reads the bytes Rust wrote there (the header is cbindgen's, checked by
// tests/header.rs; `stats_carry_the_counters_in_order` below checks the values).
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(ExitlessStats, io) == 0);
    assert!(offset_of!(ExitlessStats, stream_syscalls) == size_of::<Counters>());
    assert!(size_of::<Counters>() % size_of::<u64>() == 0 && align_of::<Counters>() == align_of::<u64>());
};

pub(crate) fn stats(s: StreamStats, backend: BackendKind) -> ExitlessStats {
    ExitlessStats {
        io: s.io,
        stream_syscalls: s.stream_syscalls,
        segments: s.segments,
        plaintext_bytes: s.plaintext_bytes,
        backend: BACKENDS.iter().find(|(_, k)| *k == backend).map_or(EXITLESS_BACKEND_AUTO, |(id, _)| *id),
        direct: u8::from(s.direct),
    }
}

/// Fills `options` with the defaults: AES-256-GCM, 64 KiB segments, no key id, no
/// fsync, backend auto, queue depth 8, O_DIRECT decided by the backend.
///
/// # Safety
/// `options` is null or valid for one write.
#[no_mangle]
pub unsafe extern "C" fn exitless_options_default(options: *mut ExitlessOptions) -> ExitlessStatus {
    // SAFETY: forwarded contract.
    guard(|| unsafe { crate::args::put(options, DEFAULT_OPTIONS, "options") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_carry_the_counters_first_where_the_abi_had_them() {
        let io = Counters { exits: 1, ops: 6, file_ops: 10, ..Counters::default() };
        let s = stats(
            StreamStats { io, stream_syscalls: 7, segments: 8, plaintext_bytes: 9, direct: true },
            BackendKind::Uring,
        );
        let n = std::mem::size_of::<Counters>() / std::mem::size_of::<u64>();
        // SAFETY: `ExitlessStats` is `repr(C)` and starts with `Counters`, `repr(C)`
        // and of u64 fields only (the assertions above: no padding, u64 alignment),
        // so its first `n` u64s are initialized, and live as long as `s`.
        let words = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(&s).cast::<u64>(), n) };
        // Where the C ABI had them when they were spelled out in ExitlessStats: exits
        // at offset 0, ops at 40, file_ops at 72 (a new counter goes after them).
        assert_eq!((words[0], words[5], words[9]), (1, 6, 10));
        assert_eq!(s.io, io);
        assert_eq!((s.stream_syscalls, s.segments, s.plaintext_bytes), (7, 8, 9));
        assert_eq!((s.backend, s.direct), (EXITLESS_BACKEND_URING, 1));
    }
}
