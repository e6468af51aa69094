//! Format version 2 (docs/FORMAT.md, "Version 2: key envelope"): the header carries
//! the wrapped data key. Round trips, the parsing rules, tampering with the envelope,
//! and version 1 unchanged next to it.

use exitless_seal::{
    open_to_vec, seal_to_vec, Algorithm, DataKey, Decryptor, ErrorKind, Header, KeyId, Layout, StreamParams,
    HEADER_LEN, MAX_ENVELOPE_LEN, MAX_HEADER_LEN, TAG_LEN, V2_FIXED_LEN,
};

const S: u32 = 256;
const ALGS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

fn key(b: u8) -> DataKey {
    DataKey::from_array([b; 32])
}

fn params(algorithm: Algorithm, segment_size: u32, envelope: &[u8]) -> StreamParams {
    StreamParams { algorithm, segment_size, key_id: KeyId([0x5a; 16]), envelope: Some(envelope.to_vec()) }
}

fn seal(p: &StreamParams, pt: &[u8]) -> Vec<u8> {
    seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key(1),
            params: p,
            context: b"ctx",
            salt: [3; 32],
            nonce_prefix: [4; 7],
        },
        pt,
    )
    .unwrap()
}

fn kind(r: Result<Vec<u8>, exitless_seal::Error>) -> ErrorKind {
    r.expect_err("must fail").kind()
}

fn envelope(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

#[test]
fn round_trips_at_many_sizes() {
    for alg in ALGS {
        for env_len in [1usize, 40, 167] {
            let env = envelope(env_len);
            let p = params(alg, S, &env);
            let h = V2_FIXED_LEN + env_len;
            let layout = Layout::new(S, h).unwrap();
            assert_eq!(p.layout().unwrap(), layout);
            let p0 = S as usize - h - TAG_LEN;
            let q = S as usize - TAG_LEN;
            for n in [0, 1, p0 - 1, p0, p0 + 1, p0 + q, p0 + 3 * q + 5, 2000] {
                let pt: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
                let sealed = seal(&p, &pt);
                assert_eq!(sealed.len() as u64, layout.sealed_len(n as u64).unwrap(), "{env_len} {n}");
                assert_eq!(&sealed[..4], b"EXLS");
                assert_eq!(sealed[4], 2);
                assert_eq!(&sealed[6..8], &(h as u16).to_be_bytes());
                assert_eq!(&sealed[68..72], &[(env_len >> 8) as u8, env_len as u8, 0, 0]);
                assert_eq!(&sealed[72..h], &env[..]);
                let dec = Decryptor::new(&key(1), &sealed, b"ctx").unwrap();
                assert_eq!(dec.header().envelope(), Some(&env[..]));
                assert_eq!(dec.header().key_id(), KeyId([0x5a; 16]));
                assert_eq!(dec.layout().offset(0), h as u64);
                assert_eq!(open_to_vec(&key(1), &sealed, b"ctx").unwrap(), pt);
            }
        }
    }
}

#[test]
fn largest_envelope_and_tightest_segment() {
    let env = envelope(MAX_ENVELOPE_LEN);
    let tight = (MAX_HEADER_LEN + TAG_LEN + 1) as u32;
    let sealed = seal(&params(Algorithm::Aes256Gcm, tight, &env), b"xy");
    assert_eq!(open_to_vec(&key(1), &sealed, b"ctx").unwrap(), b"xy");
    // One byte per segment 0, then full segments.
    let pt = vec![9u8; 1000];
    let sealed = seal(&params(Algorithm::Aes256Gcm, tight, &env), &pt);
    assert_eq!(open_to_vec(&key(1), &sealed, b"ctx").unwrap(), pt);
    let too_small = seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key(1),
            params: &params(Algorithm::Aes256Gcm, tight - 1, &env),
            context: b"",
            salt: [0; 32],
            nonce_prefix: [0; 7],
        },
        b"",
    );
    assert_eq!(kind(too_small), ErrorKind::InvalidArgument);
    let too_big = seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key(1),
            params: &params(Algorithm::Aes256Gcm, 4096, &envelope(1025)),
            context: b"",
            salt: [0; 32],
            nonce_prefix: [0; 7],
        },
        b"",
    );
    assert_eq!(kind(too_big), ErrorKind::InvalidArgument);
    let empty = seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key(1),
            params: &params(Algorithm::Aes256Gcm, 4096, &[]),
            context: b"",
            salt: [0; 32],
            nonce_prefix: [0; 7],
        },
        b"",
    );
    assert_eq!(kind(empty), ErrorKind::InvalidArgument);
}

/// Every byte of the header, envelope included, is authenticated: flipping any bit
/// fails the stream, with the class the parsing rules give.
#[test]
fn every_header_and_envelope_bit_flip_fails() {
    for alg in ALGS {
        for n in [0usize, 10, 500] {
            let p = params(alg, S, &envelope(40));
            let sealed = seal(&p, &vec![0x5a; n]);
            let h = p.header_len();
            for i in 0..h {
                for bit in 0..8 {
                    let mut bad = sealed.clone();
                    bad[i] ^= 1 << bit;
                    let k = kind(open_to_vec(&key(1), &bad, b"ctx"));
                    assert!(
                        matches!(k, ErrorKind::Integrity | ErrorKind::Format),
                        "byte {i} bit {bit} of {n}"
                    );
                    if i >= V2_FIXED_LEN {
                        // The envelope is opaque to the format: a changed envelope parses,
                        // and the key derivation rejects it.
                        assert_eq!(k, ErrorKind::Integrity, "envelope byte {i} bit {bit}");
                    }
                }
            }
            for i in h..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x80;
                assert_eq!(kind(open_to_vec(&key(1), &bad, b"ctx")), ErrorKind::Integrity, "byte {i}");
            }
        }
    }
}

#[test]
fn swapping_in_another_envelope_fails() {
    let a = seal(&params(Algorithm::Aes256Gcm, S, b"envelope A"), b"secret");
    let b = seal(&params(Algorithm::Aes256Gcm, S, b"envelope B"), b"secret");
    let mut spliced = a.clone();
    spliced[72..82].copy_from_slice(&b[72..82]);
    assert_eq!(kind(open_to_vec(&key(1), &spliced, b"ctx")), ErrorKind::Integrity);
}

#[test]
fn truncation_inside_the_header_is_integrity() {
    let p = params(Algorithm::Aes256Gcm, S, &envelope(40));
    let sealed = seal(&p, &vec![1; 1000]);
    for cut in 1..=p.header_len() + TAG_LEN {
        assert_eq!(kind(open_to_vec(&key(1), &sealed[..cut], b"ctx")), ErrorKind::Integrity, "cut {cut}");
    }
    for cut in (p.header_len()..sealed.len()).step_by(37) {
        assert_eq!(kind(open_to_vec(&key(1), &sealed[..cut], b"ctx")), ErrorKind::Integrity, "cut {cut}");
    }
}

/// The parsing rules of "Version 2: key envelope", each breaking one field of an
/// otherwise valid file.
#[test]
fn version_2_parsing_rules() {
    let sealed = seal(&params(Algorithm::Aes256Gcm, 4096, &envelope(100)), b"hello");
    let parse = |b: &[u8]| Header::parse(b).map(|_| ()).unwrap_err().kind();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = sealed.clone();
        f(&mut b);
        b
    };
    let set16 = |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    assert!(Header::parse(&sealed).is_ok());
    // Rule: version not 1 or 2.
    for v in [0u8, 3, 0xff] {
        assert_eq!(parse(&edit(&|b| b[4] = v)), ErrorKind::Format, "version {v}");
    }
    // Truncated inside the fixed part or the envelope.
    for cut in [1, 4, 5, 67, 68, 71, 72, 171] {
        assert_eq!(parse(&sealed[..cut]), ErrorKind::Integrity, "cut {cut}");
    }
    // A short file that does not start like a header.
    assert_eq!(parse(&edit(&|b| b[0] = b'X')[..70]), ErrorKind::Format);
    // Envelope length 0 or above 1024 (header length kept consistent).
    assert_eq!(parse(&edit(&|b| (set16(b, 68, 0), set16(b, 6, 72)).1)), ErrorKind::Format);
    assert_eq!(parse(&edit(&|b| (set16(b, 68, 1025), set16(b, 6, 1097)).1)), ErrorKind::Format);
    assert_eq!(parse(&edit(&|b| (set16(b, 68, 0xffff), set16(b, 6, 0xffff)).1)), ErrorKind::Format);
    // Header length not 72 + L.
    for h in [0u16, 68, 72, 171, 173, 0xffff] {
        assert_eq!(parse(&edit(&|b| set16(b, 6, h))), ErrorKind::Format, "H {h}");
    }
    // AEAD id, segment size range, reserved bytes.
    assert_eq!(parse(&edit(&|b| b[5] = 3)), ErrorKind::Format);
    assert_eq!(parse(&edit(&|b| b[8..12].copy_from_slice(&255u32.to_be_bytes()))), ErrorKind::Format);
    assert_eq!(
        parse(&edit(&|b| b[8..12].copy_from_slice(&((1u32 << 30) + 1).to_be_bytes()))),
        ErrorKind::Format
    );
    for at in [67, 70, 71] {
        assert_eq!(parse(&edit(&|b| b[at] = 1)), ErrorKind::Format, "reserved byte {at}");
    }
    // Segment size leaves no plaintext in segment 0: S < H + 17 (H = 272 here).
    let wide = seal(&params(Algorithm::Aes256Gcm, 4096, &envelope(200)), b"hello");
    let with_s = |s: u32| {
        let mut b = wide.clone();
        b[8..12].copy_from_slice(&s.to_be_bytes());
        b
    };
    assert_eq!(parse(&with_s(288)), ErrorKind::Format);
    assert_eq!(parse(&with_s(288)[..100]), ErrorKind::Format, "checked before the envelope is needed");
    assert!(Header::parse(&with_s(289)).is_ok());
    // A longer envelope than the file holds, declared consistently: truncation.
    let long = edit(&|b| (set16(b, 68, 1000), set16(b, 6, 1072)).1);
    assert_eq!(parse(&long), ErrorKind::Integrity);
}

/// Version 1 is untouched: same header length, same layout, no envelope.
#[test]
fn version_1_unchanged() {
    let p = StreamParams {
        algorithm: Algorithm::Aes256Gcm,
        segment_size: S,
        key_id: KeyId::NONE,
        envelope: None,
    };
    assert_eq!(p.header_len(), HEADER_LEN);
    let sealed = seal(&p, b"v1");
    assert_eq!(sealed[4], 1);
    assert_eq!(sealed.len(), HEADER_LEN + 2 + TAG_LEN);
    let dec = Decryptor::new(&key(1), &sealed, b"ctx").unwrap();
    assert_eq!(dec.header().envelope(), None);
    assert_eq!(dec.header().len(), HEADER_LEN);
    assert_eq!(open_to_vec(&key(1), &sealed, b"ctx").unwrap(), b"v1");
}
