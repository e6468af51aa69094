//! Forged completions from an untrusted kernel: each kind is rejected with an
//! error (never a panic, never a silent short write), the backend refuses further
//! work, and what was already written is not corrupted.

use std::os::fd::AsRawFd;

use std::sync::Arc;

use exitless_io::error::{rejected_completion, Reporter};
use exitless_io::validate::Rejected;
use exitless_io::{Backend, FaultPlan, UringBackend, UringConfig};

fn ring() -> (UringBackend, std::fs::File, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("f"))
        .unwrap();
    (UringBackend::new(UringConfig::new(4, 4096)).unwrap(), file, dir)
}

/// Starts a real 4 KiB write on slot 0 and returns its `user_data`.
fn in_flight_write(b: &mut UringBackend, file: &std::fs::File) -> u64 {
    b.write(0, file.as_raw_fd(), 0, &[0xab; 4096], 0).unwrap();
    b.in_flight_user_data(0).expect("slot 0 is in flight")
}

/// The error is a rejected completion from the kernel (not an errno): its reason.
fn rejected(err: &std::io::Error) -> Rejected {
    assert_eq!((err.kind(), err.raw_os_error()), (std::io::ErrorKind::InvalidData, None), "{err}");
    let r = rejected_completion(err).unwrap_or_else(|| panic!("not a rejected completion: {err:?}"));
    assert_eq!(r.reporter(), Reporter::Kernel);
    r.why()
}

fn assert_poisoned(b: &mut UringBackend, file: &std::fs::File) {
    let mut out = Vec::new();
    let err = b.wait(&mut out).expect_err("a poisoned backend refuses to wait");
    rejected(&err);
    assert!(rejected_completion(&err).unwrap().is_earlier(), "{err}");
    assert!(err.to_string().starts_with("io_uring backend disabled: rejected a completion"), "{err}");
    let err = b.write(1, file.as_raw_fd(), 4096, &[1; 16], 0).expect_err("and refuses new writes");
    rejected(&err);
    assert_eq!(b.counters().completions_rejected, 1);
}

#[test]
fn result_larger_than_requested() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    let err = b.inject_completion(ud, 8192).unwrap_err();
    assert_eq!(rejected(&err), Rejected::TooLong { slot: 0, requested: 4096, reported: 8192 });
    assert!(err.to_string().contains("8192 bytes, but 4096 were requested"), "{err}");
    assert_poisoned(&mut b, &f);
}

#[test]
fn unknown_slot() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    let err = b.inject_completion((ud & !0xffff_ffff) | 77, 4096).unwrap_err();
    assert_eq!(rejected(&err), Rejected::UnknownSlot(77));
    assert!(err.to_string().contains("unknown slot 77"), "{err}");
    assert_poisoned(&mut b, &f);
}

#[test]
fn stale_generation() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    let stale = ud - (1 << 32);
    let err = b.inject_completion(stale, 4096).unwrap_err();
    assert!(matches!(rejected(&err), Rejected::StaleGeneration { slot: 0, .. }), "{err}");
    assert!(err.to_string().contains("stale completion"), "{err}");
    assert_poisoned(&mut b, &f);
}

#[test]
fn duplicate_completion_for_an_idle_slot() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    let mut out = Vec::new();
    while out.is_empty() {
        b.wait(&mut out).unwrap();
    }
    assert_eq!(out[0].result.as_ref().unwrap(), &4096);
    let err = b.inject_completion(ud, 4096).unwrap_err();
    assert_eq!(rejected(&err), Rejected::NotInFlight(0));
    assert!(err.to_string().contains("nothing in flight"), "{err}");
}

#[test]
fn errno_outside_the_allow_list() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    let err = b.inject_completion(ud, -libc::ECONNRESET).unwrap_err();
    assert_eq!(rejected(&err), Rejected::UnknownErrno { slot: 0, errno: libc::ECONNRESET });
    assert!(err.to_string().contains("unexpected errno"), "{err}");
    assert_poisoned(&mut b, &f);
}

#[test]
fn ring_tail_jumping_past_head() {
    let (mut b, f, _d) = ring();
    let _ = in_flight_write(&mut b, &f);
    let err = b.inject_ring_fill(1 << 20).unwrap_err();
    assert!(matches!(rejected(&err), Rejected::RingOverrun { available: 1_048_576, .. }), "{err}");
    assert!(err.to_string().contains("claims 1048576 entries"), "{err}");
    assert_poisoned(&mut b, &f);
}

#[test]
fn an_allowed_errno_is_an_error_on_that_operation_only() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    b.inject_completion(ud, -libc::EIO).unwrap();
    let mut out = Vec::new();
    // The real completion of the same write still arrives from the kernel. If it
    // is reaped before the injected one is handed out, it is a duplicate for an idle
    // slot and must be rejected; otherwise the injected EIO comes out first.
    match b.wait(&mut out) {
        Ok(()) => {
            let c = out.iter().find(|c| c.slot == 0).expect("the failed op completes");
            assert_eq!(c.result.as_ref().unwrap_err().raw_os_error(), Some(libc::EIO));
            assert_eq!(b.counters().completions_rejected, 0);
        }
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("nothing in flight"), "{e}");
            assert_eq!(b.counters().completions_rejected, 1);
        }
    }
}

#[test]
fn a_short_write_is_resubmitted_and_the_data_is_whole() {
    let (mut b, f, _d) = ring();
    let ud = in_flight_write(&mut b, &f);
    // The kernel claims only 1000 of 4096 bytes went out: the rest is resubmitted.
    // (The real completion for `ud` then becomes stale and is rejected, so wait
    // for the resubmission through a fresh backend view: check via the file.)
    b.inject_completion(ud, 1000).unwrap();
    assert_eq!(b.counters().resubmits, 1);
    let mut out = Vec::new();
    let mut result = Ok(());
    while b.in_flight() > 0 && result.is_ok() {
        result = b.wait(&mut out).map(drop);
    }
    // Either the resubmitted remainder completed, or the (now stale) real
    // completion of the first submission was caught; both leave the bytes whole:
    // the remainder rewrites bytes 1000..4096 with the same data.
    let bytes = std::fs::read(_d.path().join("f")).unwrap();
    assert!(bytes.len() == 4096 && bytes.iter().all(|&x| x == 0xab), "file holds the written bytes");
}

#[test]
fn a_forge_fault_is_a_rejected_completion_and_poisons_the_backend() {
    // The fault-injection path the spill streams, the C ABI and Python use
    // (`forge@write=1`): the second write's completion claims one byte more than
    // was asked for.
    let (mut b, f, _d) = ring();
    assert!(b.set_faults(Some(Arc::new(FaultPlan::parse("forge@write=1").unwrap()))));
    let fd = f.as_raw_fd();
    b.write(0, fd, 0, &[1; 4096], 0).unwrap();
    b.write(1, fd, 4096, &[2; 4096], 0).unwrap();
    let mut out = Vec::new();
    let mut result = Ok(());
    while b.in_flight() > 0 && result.is_ok() {
        result = b.wait(&mut out);
    }
    let err = result.expect_err("the forged completion is rejected");
    assert_eq!(rejected(&err), Rejected::TooLong { slot: 1, requested: 4096, reported: 4097 });
    assert_poisoned(&mut b, &f);
}
