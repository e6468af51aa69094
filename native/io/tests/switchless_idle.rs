//! An idle switchless worker sleeps instead of spinning. Its own test binary: the
//! check reads the CPU time of the whole process, which other tests running in
//! parallel in the same process would add to (it failed that way under load).

use std::os::fd::AsRawFd;
use std::time::Duration;

use exitless_io::{Backend, OcallModel, SwitchlessBackend, SwitchlessConfig};

const FREE_MODEL: OcallModel = OcallModel { cycles_per_exit: 10, triple_above: Some(16384) };

/// CPU time (user + system) of every thread of this process, in microseconds.
fn process_cpu_us() -> u64 {
    // SAFETY: getrusage only writes the zero-initialised struct we pass.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        u
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

#[test]
fn idle_workers_sleep_instead_of_spinning_every_millisecond() {
    let mut b = SwitchlessBackend::new(1, 4096, SwitchlessConfig::default(), FREE_MODEL).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // past the idle spins: asleep
    let before = process_cpu_us();
    std::thread::sleep(Duration::from_millis(500));
    let used = process_cpu_us() - before;
    // A worker that spun 20,000 rounds after every 1 ms timeout used ~260 ms of the 500 here.
    assert!(used < 50_000, "an idle switchless worker used {used} µs of CPU in 500 ms");
    // And it still serves: a request after the idle period completes.
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("f")).unwrap();
    b.write(0, f.as_raw_fd(), 0, b"abc", 0).unwrap();
    drop(b);
}
