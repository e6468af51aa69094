//! ring vs aws-lc, side by side in one process: AES-256-GCM sealing in place, one
//! segment at a time over a warm buffer (32 MiB, or the MiB given) that every pass
//! reuses, at 4 KiB, 64 KiB and 1 MiB segments; then exitless-seal's whole-stream `seal_into` /
//! `open_into` with the provider the precedence rule picks (aws-lc when both are on).
//! Passes interleave the providers; each figure is the median of 9 passes after 2
//! warm-up passes.
//!
//! `cargo run --release -p exitless-seal --features aws-lc --example providers [MiB]`
//! (it needs both `ring` and `aws-lc`; without them it only says so).

#[cfg(all(feature = "ring", feature = "aws-lc"))]
fn main() {
    side_by_side::main();
}

#[cfg(not(all(feature = "ring", feature = "aws-lc")))]
fn main() {
    eprintln!("the providers example needs features `ring` and `aws-lc`: --features aws-lc");
}

#[cfg(all(feature = "ring", feature = "aws-lc"))]
mod side_by_side {
    use std::hint::black_box;
    use std::time::Instant;

    use exitless_seal::{open_into, seal_into, DataKey, Layout, StreamParams, HEADER_LEN, PROVIDER};

    const REPS: usize = 9;
    const WARMUP: usize = 2;

    fn nonce(i: usize) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        n
    }

    fn ring_pass(key: &ring::aead::LessSafeKey, buf: &mut [u8], seg: usize) {
        for (i, chunk) in buf.chunks_mut(seg).enumerate() {
            let n = ring::aead::Nonce::assume_unique_for_key(nonce(i));
            let tag = key.seal_in_place_separate_tag(n, ring::aead::Aad::empty(), chunk).unwrap();
            black_box(tag.as_ref());
        }
    }

    fn awslc_pass(key: &aws_lc_rs::aead::LessSafeKey, buf: &mut [u8], seg: usize) {
        for (i, chunk) in buf.chunks_mut(seg).enumerate() {
            let n = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce(i));
            let tag = key.seal_in_place_separate_tag(n, aws_lc_rs::aead::Aad::empty(), chunk).unwrap();
            black_box(tag.as_ref());
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    fn gbps(bytes: usize, secs: f64) -> f64 {
        bytes as f64 / secs / 1e9
    }

    fn time(f: impl FnOnce()) -> f64 {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }

    pub(crate) fn main() {
        let mib: usize = std::env::args().nth(1).map_or(32, |a| a.parse().expect("buffer size in MiB"));
        let total = mib << 20;
        let raw = [7u8; 32];
        let ring_key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &raw).unwrap(),
        );
        let awslc_key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &raw).unwrap(),
        );
        let pt: Vec<u8> = (0..total).map(|i| i as u8).collect();
        let mut buf = pt.clone();
        let key = DataKey::from_array(raw);
        println!(
            "AES-256-GCM seal, GB/s, median of {REPS} interleaved passes over a warm {} MiB buffer",
            mib
        );
        println!(
            "{:>8}  {:>6}  {:>6}  {:>5}  {:>18}  {:>18}",
            "segment", "ring", "aws-lc", "ratio", "seal_into", "open_into"
        );
        for seg in [4096usize, 65536, 1 << 20] {
            let params = StreamParams { segment_size: seg as u32, ..Default::default() };
            let sealed_len =
                Layout::new(seg as u32, HEADER_LEN).unwrap().sealed_len(total as u64).unwrap() as usize;
            let mut sealed = vec![0u8; sealed_len];
            let mut back = vec![0u8; total];
            let (mut r, mut a, mut s, mut o) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for rep in 0..WARMUP + REPS {
                let tr = time(|| ring_pass(&ring_key, &mut buf, seg));
                let ta = time(|| awslc_pass(&awslc_key, &mut buf, seg));
                let ts = time(|| {
                    seal_into(
                        &exitless_seal::SealSpec {
                            key: &key,
                            params: &params,
                            context: b"",
                            salt: [1; 32],
                            nonce_prefix: [2; 7],
                        },
                        &pt,
                        &mut sealed,
                    )
                    .unwrap();
                });
                let to = time(|| {
                    open_into(&key, &sealed, b"", &mut back).unwrap();
                });
                if rep >= WARMUP {
                    r.push(gbps(total, tr));
                    a.push(gbps(total, ta));
                    s.push(gbps(total, ts));
                    o.push(gbps(total, to));
                }
            }
            assert!(back == pt);
            let (r, a) = (median(r), median(a));
            println!(
                "{:>8}  {:>6.2}  {:>6.2}  {:>5.2}  {:>8.2} ({PROVIDER:>6})  {:>8.2} ({PROVIDER:>6})",
                seg,
                r,
                a,
                a / r,
                median(s),
                median(o)
            );
        }
    }
}
