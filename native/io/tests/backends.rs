//! The synchronous backends (sync, ocall, switchless) through the `Backend` trait:
//! round trips, exit counts, errors.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, RawFd};

use exitless_io::{
    Backend, BackendKind, Completion, OcallBackend, OcallModel, SwitchlessBackend, SwitchlessConfig,
    SyncBackend,
};

const SLOT: usize = 64 << 10;
const SIZES: &[usize] = &[1, 100, 4096, 4097, 16384, 16385, 40_000, SLOT, 12_345, 0, 777];

fn model() -> OcallModel {
    OcallModel { cycles_per_exit: 10, triple_above: Some(16384) }
}

fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + i * 7 + 1) as u8).collect()
}

/// A free slot: one never used, or one whose completion came back (waiting if needed).
fn free_slot(b: &mut dyn Backend, busy: &mut [bool], done: &mut Vec<Completion>) -> usize {
    loop {
        if let Some(s) = busy.iter().position(|&x| !x) {
            return s;
        }
        b.wait(done).unwrap();
        for c in done.iter() {
            busy[c.slot] = false;
        }
    }
}

/// Writes `sizes` back to back through `b`, reads them back, checks the bytes.
/// Returns the number of operations.
fn round_trip(b: &mut dyn Backend, fd: RawFd, sizes: &[usize]) -> u64 {
    let mut busy = vec![false; b.depth()];
    let mut done = Vec::new();
    let mut offsets = Vec::new();
    let mut at = 0u64;
    for (i, &len) in sizes.iter().enumerate() {
        let slot = free_slot(b, &mut busy, &mut done);
        b.write(slot, fd, at, &pattern(i, len), 0).unwrap();
        busy[slot] = true;
        offsets.push(at);
        at += len as u64;
    }
    while b.in_flight() > 0 {
        b.wait(&mut done).unwrap();
    }
    assert_eq!(done.len(), sizes.len());
    for c in done.drain(..) {
        c.result.unwrap();
    }
    b.fsync(fd).unwrap();

    busy.fill(false);
    let mut reading: HashMap<usize, usize> = HashMap::new();
    let mut checked = 0;
    let mut check = |b: &mut dyn Backend, done: &mut Vec<Completion>, reading: &mut HashMap<usize, usize>| {
        for c in done.drain(..) {
            let i = reading.remove(&c.slot).unwrap();
            assert_eq!(c.result.unwrap(), sizes[i], "segment {i}");
            let mut out = vec![0u8; sizes[i]];
            b.copy_out(c.slot, &mut out);
            assert!(out == pattern(i, sizes[i]), "segment {i} differs");
            checked += 1;
        }
    };
    for (i, &len) in sizes.iter().enumerate() {
        let slot = match busy.iter().position(|&x| !x) {
            Some(s) => s,
            None => {
                b.wait(&mut done).unwrap();
                for c in done.iter() {
                    busy[c.slot] = false;
                }
                check(b, &mut done, &mut reading);
                busy.iter().position(|&x| !x).unwrap()
            }
        };
        b.read(slot, fd, offsets[i], len).unwrap();
        busy[slot] = true;
        reading.insert(slot, i);
    }
    while b.in_flight() > 0 {
        b.wait(&mut done).unwrap();
        check(b, &mut done, &mut reading);
    }
    assert_eq!(checked, sizes.len());
    2 * sizes.len() as u64 + 1
}

fn assert_enospc_on_dev_full(b: &mut dyn Backend) {
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    b.write(0, full.as_raw_fd(), 0, &[1u8; 4096], 0).unwrap();
    let mut done = Vec::new();
    b.wait(&mut done).unwrap();
    assert_eq!(done.len(), 1);
    let err = done.pop().unwrap().result.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // The slot is free again.
    b.write(0, full.as_raw_fd(), 0, b"x", 0).unwrap();
    b.wait(&mut done).unwrap();
}

#[test]
fn sync_round_trip_without_exits() {
    let f = tempfile::tempfile().unwrap();
    let mut b = SyncBackend::new(3, SLOT).unwrap();
    assert_eq!(b.kind(), BackendKind::Sync);
    let ops = round_trip(&mut b, f.as_raw_fd(), SIZES);
    let c = b.counters();
    assert_eq!(c.exits, 0);
    assert_eq!(c.ops, ops);
    assert_eq!(c.bytes, 2 * SIZES.iter().sum::<usize>() as u64);
    assert!(c.syscalls >= ops - 2, "{c:?}"); // zero-length transfers make no syscall
    assert_enospc_on_dev_full(&mut b);
}

#[test]
fn ocall_round_trip_counts_exits_exactly() {
    let f = tempfile::tempfile().unwrap();
    let mut b = OcallBackend::new(4, SLOT, model()).unwrap();
    assert_eq!(b.kind(), BackendKind::Ocall);
    let ops = round_trip(&mut b, f.as_raw_fd(), SIZES);
    let large = SIZES.iter().filter(|&&n| n > 16384).count() as u64;
    let c = b.counters();
    // Each segment is written once and read once; 2 extra exits per large transfer; fsync 1.
    assert_eq!(c.exits, 2 * (SIZES.len() as u64 + 2 * large) + 1, "{c:?}");
    assert_eq!(c.ops, ops);
    assert_eq!(c.resubmits, 0);
    assert_eq!(c.bytes, 2 * SIZES.iter().sum::<usize>() as u64);
    assert_enospc_on_dev_full(&mut b);
}

#[test]
fn ocall_exit_rule() {
    let f = tempfile::tempfile().unwrap();
    let fd = f.as_raw_fd();
    let writes = |model: OcallModel, len: usize| {
        let mut b = OcallBackend::new(10, SLOT, model).unwrap();
        round_trip(&mut b, fd, &[len; 10]);
        b.counters().exits
    };
    // 10 writes + 10 reads + 1 fsync.
    assert_eq!(writes(model(), 4096), 21);
    assert_eq!(writes(model(), SLOT), 61);
    assert_eq!(writes(OcallModel { triple_above: None, ..model() }, SLOT), 21);
}

#[test]
fn switchless_round_trip_served_by_a_worker() {
    let f = tempfile::tempfile().unwrap();
    // Sleeping disabled and a patient caller: a worker takes every request even
    // on a loaded machine (the caller would spin for minutes before falling back).
    let config = SwitchlessConfig {
        workers: 1,
        retries_before_fallback: u32::MAX,
        worker_sleep: None,
        ..SwitchlessConfig::default()
    };
    let mut b = SwitchlessBackend::new(4, SLOT, config, model()).unwrap();
    assert_eq!(b.kind(), BackendKind::Switchless);
    let ops = round_trip(&mut b, f.as_raw_fd(), SIZES);
    let c = b.counters();
    assert_eq!((c.exits, c.fallbacks), (0, 0), "{c:?}");
    assert_eq!(c.ops, ops);
    assert_eq!(c.bytes, 2 * SIZES.iter().sum::<usize>() as u64);
    assert_enospc_on_dev_full(&mut b);
    assert_eq!(b.counters().exits, 0);
}

#[test]
fn switchless_defaults_exit_only_on_fallback() {
    let f = tempfile::tempfile().unwrap();
    let mut b = SwitchlessBackend::new(4, SLOT, SwitchlessConfig::default(), model()).unwrap();
    let ops = round_trip(&mut b, f.as_raw_fd(), SIZES);
    let c = b.counters();
    assert_eq!(c.exits, c.fallbacks, "one exit per fallback, at any size: {c:?}");
    assert!(c.fallbacks <= ops);
    assert_eq!(c.ops, ops);
}

#[test]
fn switchless_without_workers_always_falls_back() {
    let f = tempfile::tempfile().unwrap();
    let config = SwitchlessConfig { workers: 0, retries_before_fallback: 100, ..SwitchlessConfig::default() };
    let mut b = SwitchlessBackend::new(2, SLOT, config, model()).unwrap();
    let ops = round_trip(&mut b, f.as_raw_fd(), SIZES);
    let c = b.counters();
    assert_eq!(c.exits, ops, "{c:?}");
    assert_eq!(c.fallbacks, ops);
    assert_enospc_on_dev_full(&mut b);
    assert_eq!(b.counters().fallbacks, ops + 2);
}

#[test]
fn padded_writes_reach_the_file() {
    let backends: Vec<Box<dyn Backend>> = vec![
        Box::new(SyncBackend::new(1, 8192).unwrap()),
        Box::new(OcallBackend::new(1, 8192, model()).unwrap()),
        Box::new(SwitchlessBackend::new(1, 8192, SwitchlessConfig::default(), model()).unwrap()),
    ];
    for mut b in backends {
        let f = tempfile::tempfile().unwrap();
        let mut done = Vec::new();
        b.write(0, f.as_raw_fd(), 0, b"sealed", 4096).unwrap();
        b.wait(&mut done).unwrap();
        assert_eq!(done.pop().unwrap().result.unwrap(), 4096, "{:?}", b.kind());
        assert_eq!(f.metadata().unwrap().len(), 4096);
        // A read past the end comes back short.
        b.read(0, f.as_raw_fd(), 4000, 8192).unwrap();
        b.wait(&mut done).unwrap();
        assert_eq!(done.pop().unwrap().result.unwrap(), 96, "{:?}", b.kind());
    }
}
