//! Round trips, random access and the attacks of FORMAT.md section 5, on both AEADs.

use exitless_seal::{
    open_to_vec, seal_to_vec, Algorithm, DataKey, Decryptor, Encryptor, ErrorKind, KeyId, Layout,
    StreamParams, HEADER_LEN, TAG_LEN,
};

const S: u32 = 256;
const P0: usize = S as usize - HEADER_LEN - TAG_LEN;
const P: usize = S as usize - TAG_LEN;

fn key(b: u8) -> DataKey {
    DataKey::from_array([b; 32])
}

fn params(algorithm: Algorithm) -> StreamParams {
    StreamParams { algorithm, segment_size: S, key_id: KeyId::NONE, envelope: None }
}

fn seal(alg: Algorithm, salt: u8, pt: &[u8]) -> Vec<u8> {
    seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key(1),
            params: &params(alg),
            context: b"ctx",
            salt: [salt; 32],
            nonce_prefix: [salt; 7],
        },
        pt,
    )
    .unwrap()
}

fn sizes() -> [usize; 8] {
    [0, 1, P0 - 1, P0, P0 + 1, P0 + P, P0 + 5 * P + P / 2, 3000]
}

const ALGS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

fn kind(r: Result<Vec<u8>, exitless_seal::Error>) -> ErrorKind {
    r.expect_err("must fail").kind()
}

#[test]
fn round_trips_and_lengths() {
    for alg in ALGS {
        for n in sizes() {
            let pt: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let sealed = seal(alg, 3, &pt);
            assert_eq!(
                sealed.len() as u64,
                Layout::new(S, HEADER_LEN).unwrap().sealed_len(n as u64).unwrap()
            );
            assert_eq!(open_to_vec(&key(1), &sealed, b"ctx").unwrap(), pt);
        }
    }
}

#[test]
fn every_single_byte_flip_fails() {
    for alg in ALGS {
        for n in sizes() {
            let sealed = seal(alg, 4, &vec![0x5a; n]);
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x01;
                let k = kind(open_to_vec(&key(1), &bad, b"ctx"));
                assert!(matches!(k, ErrorKind::Integrity | ErrorKind::Format), "byte {i} of {n}");
            }
        }
    }
}

#[test]
fn truncation_and_extension_fail() {
    for alg in ALGS {
        let sealed = seal(alg, 5, &vec![1; P0 + 5 * P + P / 2]);
        let mut cuts = vec![];
        for b in (0..=sealed.len()).step_by(S as usize) {
            cuts.extend([b.saturating_sub(1), b, b + 1]);
        }
        cuts.extend([HEADER_LEN, sealed.len() - 1]);
        for cut in cuts.into_iter().filter(|&c| c < sealed.len()) {
            assert_eq!(kind(open_to_vec(&key(1), &sealed[..cut], b"ctx")), ErrorKind::Integrity, "cut {cut}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(kind(open_to_vec(&key(1), &longer, b"ctx")), ErrorKind::Integrity);
    }
}

#[test]
fn reorder_duplicate_drop_splice_wrong_key_or_context_fail() {
    let s = S as usize;
    for alg in ALGS {
        let sealed = seal(alg, 6, &vec![2; P0 + 4 * P]); // 5 segments, last full
        let other = seal(alg, 7, &vec![2; P0 + 4 * P]);
        let seg = |f: &[u8], i: usize| f[i * s..(i + 1) * s].to_vec();
        let mut swapped = sealed.clone();
        swapped[s..2 * s].copy_from_slice(&seg(&sealed, 2));
        swapped[2 * s..3 * s].copy_from_slice(&seg(&sealed, 1));
        let mut duplicated = sealed.clone();
        duplicated[2 * s..3 * s].copy_from_slice(&seg(&sealed, 1));
        let dropped_last = sealed[..4 * s].to_vec();
        let mut spliced = sealed.clone();
        spliced[3 * s..4 * s].copy_from_slice(&seg(&other, 3));
        for bad in [swapped, duplicated, dropped_last, spliced] {
            assert_eq!(kind(open_to_vec(&key(1), &bad, b"ctx")), ErrorKind::Integrity);
        }
        assert_eq!(kind(open_to_vec(&key(2), &sealed, b"ctx")), ErrorKind::Integrity);
        assert_eq!(kind(open_to_vec(&key(1), &sealed, b"ctx2")), ErrorKind::Integrity);
        assert_eq!(kind(open_to_vec(&key(1), &sealed, b"")), ErrorKind::Integrity);
    }
}

#[test]
fn random_access_opens_any_segment_alone() {
    let pt: Vec<u8> = (0..P0 + 3 * P + 10).map(|i| i as u8).collect();
    let sealed = seal(Algorithm::Aes256Gcm, 8, &pt);
    let dec = Decryptor::new(&key(1), &sealed, b"ctx").unwrap();
    let g = dec.geometry(sealed.len() as u64).unwrap();
    let layout = dec.layout();
    assert_eq!(g.segments, 5);
    for i in (0..g.segments).rev() {
        let last = i == g.final_index();
        let len = if last { g.final_len } else { layout.capacity(i) + TAG_LEN };
        let off = layout.offset(i) as usize;
        let mut buf = vec![0; S as usize];
        let n = dec.open_into(i, last, &sealed[off..off + len], &mut buf).unwrap();
        let start = layout.plaintext_start(i) as usize;
        assert_eq!(&buf[..n], &pt[start..start + n]);
        // The same bytes opened as another index, or with the wrong last flag, fail.
        buf.fill(0xee);
        let wrong = dec.open_into(i ^ 1, last, &sealed[off..off + len], &mut buf);
        assert!(wrong.is_err());
        assert_ne!(&buf[..n], &pt[start..start + n], "a failed open leaves no plaintext behind");
    }
}

#[test]
fn seal_refuses_misuse() {
    let enc = Encryptor::new(&key(1), &params(Algorithm::Aes256Gcm), b"", [0; 32], [0; 7]).unwrap();
    let mut buf = vec![0u8; S as usize];
    let k = |r: Result<usize, exitless_seal::Error>| r.unwrap_err().kind();
    assert_eq!(k(enc.seal_in_place(0, false, &mut buf, 10)), ErrorKind::InvalidArgument);
    assert_eq!(k(enc.seal_in_place(0, true, &mut buf, P0 + 1)), ErrorKind::InvalidArgument);
    assert_eq!(k(enc.seal_in_place(3, true, &mut buf, 0)), ErrorKind::InvalidArgument);
    assert_eq!(k(enc.seal_in_place(1, true, &mut buf[..20], 10)), ErrorKind::InvalidArgument);
    assert_eq!(k(enc.seal_in_place(1 << 32, true, &mut buf, 10)), ErrorKind::InvalidArgument);
    assert_eq!(enc.seal_in_place(1, true, &mut buf, 10).unwrap(), 26);
}

#[test]
fn data_key_debug_hides_bytes() {
    let s = format!("{:?}", DataKey::from_array([0xab; 32]));
    assert!(!s.contains("ab") && !s.contains("171"), "{s}");
}
