//! One large sealed stream on 1 vCPU (no runtime: sealing on the caller's thread)
//! and on N vCPUs (the caller and the vCPUs seal in parallel on exitless-rt), side by
//! side in one run, on the null backend (IO is not the bottleneck) and on a real
//! file (io_uring, O_DIRECT where the file system allows it).
//!
//! Runs alternate (1, N, 1, N, ...) and the speedup is the median of the per-pair
//! ratios, which cancels most of a shared machine's drift. `ceiling` is the same
//! ratio for N plain threads sealing in memory with no runtime and no IO: the most
//! this machine gives.
//!
//! Prints one JSON object.
//! `cargo run --release -p exitless-bench --example scaling -- [MiB] [dir] [null,uring-file] [pairs]`

use std::time::Instant;

use exitless_bench::drivers;
use exitless_io::BackendKind;
use exitless_rt::Runtime;
use exitless_seal::{DataKey, Encryptor, StreamParams};
use exitless_spill::{BackendChoice, SpillOptions};

const SEGMENT: u32 = 65536;

fn run(path: &str, kind: BackendKind, rt: Option<Runtime>, total: u64) -> f64 {
    let options = SpillOptions {
        params: StreamParams { segment_size: SEGMENT, ..StreamParams::default() },
        backend: BackendChoice::Fixed(kind),
        runtime: rt,
        ..SpillOptions::default()
    };
    let t = Instant::now();
    drivers::sealed_write(path, &options, total, 8 << 20).expect("sealed write");
    let secs = t.elapsed().as_secs_f64();
    if kind != BackendKind::Null {
        let _ = std::fs::remove_file(path);
    }
    total as f64 / secs / 1e9
}

/// GB/s of `threads` plain threads sealing `total` bytes of 64 KiB segments in memory.
fn plain_threads(threads: usize, total: u64) -> f64 {
    let params = StreamParams { segment_size: SEGMENT, ..StreamParams::default() };
    let enc = Encryptor::new(&DataKey::from_array([1; 32]), &params, b"ceiling", [2; 32], [3; 7])
        .expect("encryptor");
    let p = SEGMENT as usize - exitless_seal::TAG_LEN;
    let per_thread = total as usize / p / threads;
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let enc = &enc;
            s.spawn(move || {
                let src = vec![th as u8; p];
                let mut buf = vec![0u8; SEGMENT as usize];
                for i in 0..per_thread {
                    buf[..p].copy_from_slice(&src);
                    let index = 1 + (th * per_thread + i) as u64;
                    enc.seal_in_place(index, false, &mut buf, p).expect("seal");
                }
            });
        }
    });
    (per_thread * threads * p) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let mib: u64 = arg(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let dir = arg(2).unwrap_or_else(|| ".".into());
    let only = arg(3).unwrap_or_else(|| "null,uring-file".into());
    let pairs: usize = arg(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let total = mib << 20;
    let vcpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let rt = Runtime::builder().vcpus(vcpus).name("scaling").build().expect("runtime");
    let file = format!("{dir}/exitless-scaling.tmp");
    let mut out = Vec::new();

    let (mut one, mut many, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    plain_threads(vcpus, 64 << 20); // warm-up
    for _ in 0..pairs {
        let (a, b) = (plain_threads(1, total.min(256 << 20)), plain_threads(vcpus, total.min(256 << 20)));
        one.push(a);
        many.push(b);
        ratio.push(b / a);
    }
    out.push(format!(
        "\"ceiling\": {{\"gb_per_s_1_thread\": {:.3}, \"gb_per_s_{vcpus}_threads\": {:.3}, \"speedup\": {:.3}}}",
        median(one),
        median(many),
        median(ratio)
    ));
    for (label, kind, path) in
        [("null", BackendKind::Null, "/dev/null"), ("uring-file", BackendKind::Uring, file.as_str())]
    {
        if !only.split(',').any(|t| t == label) {
            continue;
        }
        let (mut one, mut many, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        run(path, kind, None, total.min(64 << 20)); // warm-up
        run(path, kind, Some(rt.clone()), total.min(64 << 20));
        for _ in 0..pairs {
            let a = run(path, kind, None, total);
            let b = run(path, kind, Some(rt.clone()), total);
            one.push(a);
            many.push(b);
            ratio.push(b / a);
        }
        out.push(format!(
            "\"{label}\": {{\"gb_per_s_1_vcpu\": {:.3}, \"gb_per_s_{vcpus}_vcpus\": {:.3}, \"speedup\": {:.3}, \"speedup_min\": {:.3}, \"speedup_max\": {:.3}}}",
            median(one),
            median(many),
            median(ratio.clone()),
            ratio.iter().copied().fold(f64::INFINITY, f64::min),
            ratio.iter().copied().fold(0.0, f64::max),
        ));
    }
    let s = rt.stats();
    println!(
        "{{\"bytes\": {total}, \"segment_size\": {SEGMENT}, \"vcpus\": {vcpus}, \"pairs\": {pairs}, {}, \"runtime\": {{\"steals\": {}, \"parks\": {}, \"exits\": {}}}}}",
        out.join(", "),
        s.steals,
        s.parks,
        s.exits
    );
}
