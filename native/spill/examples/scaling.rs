//! One large sealed stream on 1 vCPU (no runtime: sealing on the caller's thread)
//! and on N vCPUs (segments sealed in parallel on exitless-rt), side by side in one
//! run, on the null backend (IO is not the bottleneck) and on a real file.
//! Prints one JSON object. `cargo run --release -p exitless-spill --example scaling -- [MiB] [dir]`

use std::time::Instant;

use exitless_io::BackendKind;
use exitless_rt::Runtime;
use exitless_seal::StreamParams;
use exitless_spill::{bench, BackendChoice, SpillOptions};

fn run(path: &str, kind: BackendKind, rt: Option<Runtime>, total: u64) -> (f64, u64) {
    let options = SpillOptions {
        params: StreamParams { segment_size: 65536, ..StreamParams::default() },
        backend: BackendChoice::Fixed(kind),
        runtime: rt,
        ..SpillOptions::default()
    };
    let t = Instant::now();
    let stats = bench::sealed_write(path, &options, total, 8 << 20).expect("sealed write");
    let secs = t.elapsed().as_secs_f64();
    if kind != BackendKind::Null {
        let _ = std::fs::remove_file(path);
    }
    (total as f64 / secs / 1e9, stats.segments)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mib: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let dir = std::env::args().nth(2).unwrap_or_else(|| ".".into());
    let total = mib << 20;
    let vcpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let rt = Runtime::builder().vcpus(vcpus).name("scaling").build().expect("runtime");
    let file = format!("{dir}/exitless-scaling.tmp");
    let mut out = Vec::new();
    for (label, kind, path) in
        [("null", BackendKind::Null, "/dev/null"), ("uring-file", BackendKind::Uring, file.as_str())]
    {
        let (mut one, mut many) = (Vec::new(), Vec::new());
        run(path, kind, None, total.min(64 << 20)); // warm-up
        for _ in 0..3 {
            one.push(run(path, kind, None, total).0);
            many.push(run(path, kind, Some(rt.clone()), total).0);
        }
        let (one, many) = (median(one), median(many));
        out.push(format!(
            "\"{label}\": {{\"gb_per_s_1_vcpu\": {one:.3}, \"gb_per_s_{vcpus}_vcpus\": {many:.3}, \"speedup\": {:.3}}}",
            many / one
        ));
    }
    let s = rt.stats();
    println!(
        "{{\"bytes\": {total}, \"segment_size\": 65536, \"vcpus\": {vcpus}, {}, \"runtime\": {{\"steals\": {}, \"parks\": {}, \"exits\": {}}}}}",
        out.join(", "),
        s.steals,
        s.parks,
        s.exits
    );
}
