//! Quick single-core throughput of whole-buffer seal and open (for profiling; the
//! benchmark of record is `make bench`).
use exitless_seal::{open_into, seal_into, DataKey, Layout, StreamParams};
use std::time::Instant;

fn main() {
    let len = 256 << 20;
    let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let key = DataKey::from_array([7; 32]);
    for seg in [4096u32, 65536, 1 << 20] {
        let params = StreamParams { segment_size: seg, ..Default::default() };
        let mut out = vec![
            0u8;
            Layout::new(seg, exitless_seal::HEADER_LEN).unwrap().sealed_len(len as u64).unwrap()
                as usize
        ];
        let mut back = vec![0u8; len];
        for _ in 0..3 {
            let t = Instant::now();
            seal_into(
                &exitless_seal::SealSpec {
                    key: &key,
                    params: &params,
                    context: b"",
                    salt: [1; 32],
                    nonce_prefix: [2; 7],
                },
                &pt,
                &mut out,
            )
            .unwrap();
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            open_into(&key, &out, b"", &mut back).unwrap();
            let o = t.elapsed().as_secs_f64();
            println!(
                "segment {seg:>8}: seal {:.2} GB/s, open {:.2} GB/s",
                len as f64 / s / 1e9,
                len as f64 / o / 1e9
            );
        }
    }
}
