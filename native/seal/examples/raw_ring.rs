//! Raw AEAD rate on a hot buffer (no copy), to compare with seal_into.
use exitless_seal::{DataKey, Encryptor, StreamParams};
use std::time::Instant;
fn main() {
    let key = DataKey::from_array([7; 32]);
    let enc = Encryptor::new(&key, &StreamParams::default(), b"", [1; 32], [2; 7]).unwrap();
    let cap = enc.layout().capacity(1);
    let mut buf = vec![5u8; 65536];
    let src = vec![3u8; 65536];
    let iters = 20000;
    for copy in [false, true] {
        let t = Instant::now();
        for i in 0..iters {
            if copy { buf[..cap].copy_from_slice(&src[..cap]); }
            enc.seal_in_place(1 + i as u64, false, &mut buf, cap).unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!("copy={copy}: {:.2} GB/s", (cap * iters) as f64 / s / 1e9);
    }
}
