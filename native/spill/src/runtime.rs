//! The process-wide runtime streams seal on, started on first use with one vCPU
//! per available core (`EXITLESS_VCPUS` overrides).

use std::sync::Mutex;

use exitless_rt::Runtime;

/// vCPUs for the process-wide runtime: `EXITLESS_VCPUS`, else the available cores.
pub fn default_vcpus() -> usize {
    std::env::var("EXITLESS_VCPUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The process-wide runtime, started lazily; `None` with a single vCPU (sealing in
/// parallel needs two) or if it cannot start.
///
/// A forked child (Python's multiprocessing, PySpark's daemon) inherits the runtime
/// but none of its vCPU threads: it starts its own, and never touches the parent's
/// (whose threads it cannot join), which it leaks.
pub fn global() -> Option<Runtime> {
    static RUNTIME: Mutex<Option<(u32, Option<Runtime>)>> = Mutex::new(None);
    let mut slot = RUNTIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pid = std::process::id();
    match &*slot {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            let vcpus = default_vcpus();
            let rt =
                (vcpus > 1).then(|| Runtime::builder().vcpus(vcpus).name("exitless").build().ok()).flatten();
            if let Some(inherited) = slot.replace((pid, rt.clone())) {
                std::mem::forget(inherited);
            }
            rt
        }
    }
}
