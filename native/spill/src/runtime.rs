//! The process-wide runtime streams seal on, started on first use with one vCPU
//! per available core (`EXITLESS_VCPUS` overrides).

use std::sync::OnceLock;

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
pub fn global() -> Option<Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let vcpus = default_vcpus();
            (vcpus > 1).then(|| Runtime::builder().vcpus(vcpus).name("exitless").build().ok()).flatten()
        })
        .clone()
}
