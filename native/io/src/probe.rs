//! Which backends work on this machine, and why not.

use std::io;
use std::sync::OnceLock;

/// Whether an SQPOLL io_uring can be set up here; on failure, a one-line reason.
/// Probed once per process.
pub fn uring_availability() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(probe_uring).clone()
}

fn probe_uring() -> Result<(), String> {
    // The anchor ring every backend attaches to: looking at it sets up and closes
    // nothing (see `uring::with_anchor` for why a closed ring matters).
    if crate::uring::with_anchor(|ring| ring.is_some()) {
        return Ok(());
    }
    let sqpoll = match io_uring::IoUring::<io_uring::squeue::Entry>::builder().setup_sqpoll(1000).build(8) {
        Ok(_ring) => return Ok(()),
        Err(e) => e,
    };
    let plain = io_uring::IoUring::<io_uring::squeue::Entry>::new(8).err();
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    Err(describe(&sqpoll, plain.as_ref(), sysctl.as_deref()))
}

/// The reason for a failed SQPOLL setup, given the error of a plain (non-SQPOLL)
/// setup (`None`: it worked) and the `kernel.io_uring_disabled` sysctl if readable.
fn describe(sqpoll: &io::Error, plain: Option<&io::Error>, io_uring_disabled: Option<&str>) -> String {
    let denied = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
    match (sqpoll.raw_os_error(), plain) {
        (Some(libc::ENOSYS), _) => "io_uring is not supported by this kernel (ENOSYS)".to_owned(),
        _ if denied(sqpoll) && plain.is_none() => {
            format!("no privilege for SQPOLL ({})", one_line(sqpoll))
        }
        (Some(libc::EPERM), _) => {
            let which = match io_uring_disabled.map(str::trim) {
                Some("2") => "kernel.io_uring_disabled = 2".to_owned(),
                Some("1") => "kernel.io_uring_disabled = 1 and not in kernel.io_uring_group".to_owned(),
                Some(v) => format!("seccomp, presumably: kernel.io_uring_disabled = {v}"),
                None => "seccomp or kernel.io_uring_disabled".to_owned(),
            };
            format!("io_uring is disabled (EPERM: {which})")
        }
        _ => format!("io_uring setup failed: {}", one_line(sqpoll)),
    }
}

fn one_line(e: &io::Error) -> String {
    e.to_string().replace('\n', " ")
}

/// The `IORING_FEAT_*` bits (as in `<linux/io_uring.h>`) an SQPOLL ring reports
/// here, for benchmark reports; on failure, the reason of [`uring_availability`].
/// Probed once per process.
pub fn uring_features() -> Result<u32, String> {
    static RESULT: OnceLock<Result<u32, String>> = OnceLock::new();
    RESULT.get_or_init(probe_features).clone()
}

fn probe_features() -> Result<u32, String> {
    uring_availability()?;
    crate::uring::with_anchor(|ring| ring.map(feature_bits))
        .ok_or_else(|| "io_uring setup failed: no SQPOLL ring".to_owned())
}

fn feature_bits(ring: &io_uring::IoUring) -> u32 {
    let p = ring.params();
    let bits = [
        p.is_feature_single_mmap(),
        p.is_feature_nodrop(),
        p.is_feature_submit_stable(),
        p.is_feature_rw_cur_pos(),
        p.is_feature_cur_personality(),
        p.is_feature_fast_poll(),
        p.is_feature_poll_32bits(),
        p.is_feature_sqpoll_nonfixed(),
        p.is_feature_ext_arg(),
        p.is_feature_native_workers(),
        p.is_feature_resource_tagging(),
        p.is_feature_skip_cqe_on_success(),
        p.is_feature_linked_file(),
    ];
    // Bit i of IORING_FEAT_* is the i-th flag above (SINGLE_MMAP = 1 << 0 … LINKED_FILE = 1 << 12).
    bits.iter().enumerate().fold(0, |acc, (i, &on)| acc | (u32::from(on) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn reasons() {
        assert_eq!(
            describe(&os(libc::ENOSYS), None, None),
            "io_uring is not supported by this kernel (ENOSYS)"
        );
        assert!(describe(&os(libc::EPERM), None, Some("0\n")).starts_with("no privilege for SQPOLL"));
        assert!(describe(&os(libc::EACCES), None, None).starts_with("no privilege for SQPOLL"));
        let eperm = os(libc::EPERM);
        assert_eq!(
            describe(&eperm, Some(&eperm), None),
            "io_uring is disabled (EPERM: seccomp or kernel.io_uring_disabled)"
        );
        assert_eq!(
            describe(&eperm, Some(&eperm), Some("2\n")),
            "io_uring is disabled (EPERM: kernel.io_uring_disabled = 2)"
        );
        assert!(describe(&eperm, Some(&eperm), Some("0\n")).contains("seccomp"));
        assert!(describe(&os(libc::ENOMEM), None, None).starts_with("io_uring setup failed: "));
    }

    #[test]
    #[cfg_attr(miri, ignore = "io_uring_setup is a syscall Miri cannot run")]
    fn features_of_a_working_ring_include_the_basics() {
        match (uring_availability(), uring_features()) {
            (Ok(()), Ok(bits)) => {
                assert_eq!(bits & 0b11, 0b11, "SINGLE_MMAP and NODROP since Linux 5.4: {bits:#x}")
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            other => panic!("probe and features disagree: {other:?}"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "io_uring_setup is a syscall Miri cannot run")]
    fn probe_is_cached_and_one_line() {
        let first = uring_availability();
        assert_eq!(uring_availability(), first);
        if let Err(reason) = first {
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
    }
}
