//! The test vectors of docs/FORMAT.md section 8: sealing reproduces each ciphertext
//! byte for byte and opening returns each plaintext. The same vectors are checked by
//! an independent Python implementation (tests/test_reference_format.py). `make test`
//! runs them with each crypto provider: ring, aws-lc and pure-rust.

use exitless_seal::{open_to_vec, seal_to_vec, Algorithm, DataKey, Header, KeyId, StreamParams};

struct Vector {
    name: String,
    algorithm: Algorithm,
    segment_size: u32,
    key: Vec<u8>,
    key_id: [u8; 16],
    salt: [u8; 32],
    nonce_prefix: [u8; 7],
    context: Vec<u8>,
    /// Version 2 only: the key envelope in the header.
    envelope: Option<Vec<u8>>,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn field<'a>(block: &'a str, name: &str) -> &'a str {
    block
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("vector field {name} missing"))
}

fn optional_field<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().filter_map(|l| l.split_once('=')).find(|(k, _)| k.trim() == name).map(|(_, v)| v.trim())
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

fn load() -> Vec<Vector> {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .expect("docs/FORMAT.md");
    let mut out = Vec::new();
    for part in spec.split("### Vector ").skip(1) {
        let name = part.lines().next().unwrap().to_string();
        let block = part.split("```text").nth(1).unwrap().split("```").next().unwrap();
        let algorithm = Algorithm::from_id(u8::from_str_radix(field(block, "aead"), 16).unwrap()).unwrap();
        let plaintext = unhex(field(block, "plaintext"));
        assert_eq!(plaintext.len(), field(block, "plaintext_len").parse::<usize>().unwrap());
        out.push(Vector {
            name,
            algorithm,
            segment_size: field(block, "segment_size").parse().unwrap(),
            key: unhex(field(block, "key")),
            key_id: unhex(field(block, "key_id")).try_into().unwrap(),
            salt: unhex(field(block, "salt")).try_into().unwrap(),
            nonce_prefix: unhex(field(block, "nonce_prefix")).try_into().unwrap(),
            context: unhex(field(block, "context")),
            envelope: optional_field(block, "envelope").map(unhex),
            plaintext,
            ciphertext: unhex(field(block, "ciphertext")),
        });
    }
    out
}

#[test]
fn format_md_vectors_seal_and_open() {
    let vectors = load();
    assert!(vectors.len() >= 5, "FORMAT.md must carry at least 5 vectors");
    assert!(vectors.iter().any(|v| v.envelope.is_none()), "a version-1 vector");
    assert!(vectors.iter().any(|v| v.envelope.is_some()), "a version-2 vector");
    assert!(vectors.iter().any(|v| v.algorithm == Algorithm::Aes256Gcm));
    assert!(vectors.iter().any(|v| v.algorithm == Algorithm::ChaCha20Poly1305));
    for v in &vectors {
        let key = DataKey::from_slice(&v.key).unwrap();
        let params = StreamParams {
            algorithm: v.algorithm,
            segment_size: v.segment_size,
            key_id: KeyId(v.key_id),
            envelope: v.envelope.clone(),
        };
        let sealed = seal_to_vec(
            &exitless_seal::SealSpec {
                key: &key,
                params: &params,
                context: &v.context,
                salt: v.salt,
                nonce_prefix: v.nonce_prefix,
            },
            &v.plaintext,
        )
        .unwrap();
        assert_eq!(hex::encode(&sealed), hex::encode(&v.ciphertext), "vector {}", v.name);
        assert_eq!(open_to_vec(&key, &v.ciphertext, &v.context).unwrap(), v.plaintext, "vector {}", v.name);
        let header = Header::parse(&v.ciphertext).unwrap();
        assert_eq!(header.version(), if v.envelope.is_some() { 2 } else { 1 }, "vector {}", v.name);
        assert_eq!(header.envelope(), v.envelope.as_deref(), "vector {}", v.name);
    }
}

/// The provider these vectors ran with is the one the precedence rule picks
/// (src/lib.rs: aws-lc, then ring, then pure-rust).
#[test]
fn provider_follows_the_precedence() {
    let expected = if cfg!(feature = "aws-lc") {
        "aws-lc"
    } else if cfg!(feature = "ring") {
        "ring"
    } else {
        "pure-rust"
    };
    assert_eq!(exitless_seal::PROVIDER, expected);
}

/// Regenerates the vector blocks for FORMAT.md (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn print_vectors() {
    let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let key: Vec<u8> = (0u8..32).collect();
    let salt: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
    let prefix: [u8; 7] = core::array::from_fn(|i| 0xa0 + i as u8);
    // Vector 5's envelope is shaped like a KMS WrappedKey (scheme 2, PKCS#11 AES key
    // wrap): scheme ‖ primary key id ‖ BE16(40) ‖ 40 wrapped bytes. The format treats it as opaque.
    let mut wrapped = vec![0x02];
    wrapped.extend_from_slice(&[0x33; 16]);
    wrapped.extend_from_slice(&40u16.to_be_bytes());
    wrapped.extend((0..40u8).map(|i| 0xc0 + i));
    type Case = (&'static str, Algorithm, [u8; 16], &'static [u8], usize, Option<Vec<u8>>);
    let cases: [Case; 5] = [
        ("AES-256-GCM, empty plaintext (the empty stream)", Algorithm::Aes256Gcm, [0; 16], b"", 0, None),
        (
            "AES-256-GCM, three segments, with context",
            Algorithm::Aes256Gcm,
            [0x11; 16],
            b"app-7/shuffle-3/partition-12",
            500,
            None,
        ),
        (
            "ChaCha20-Poly1305, two full segments (no empty final segment)",
            Algorithm::ChaCha20Poly1305,
            [0x22; 16],
            b"spill",
            412,
            None,
        ),
        ("AES-256-GCM, exactly one full segment 0", Algorithm::Aes256Gcm, [0; 16], b"", 172, None),
        (
            "version 2, AES-256-GCM, key envelope in the header, two segments",
            Algorithm::Aes256Gcm,
            [0x33; 16],
            b"vector-5",
            300,
            Some(wrapped),
        ),
    ];
    for (n, (title, alg, key_id, context, len, envelope)) in cases.into_iter().enumerate() {
        let params = StreamParams {
            algorithm: alg,
            segment_size: 256,
            key_id: KeyId(key_id),
            envelope: envelope.clone(),
        };
        let pt = pattern(len);
        let sealed = seal_to_vec(
            &exitless_seal::SealSpec {
                key: &DataKey::from_slice(&key).unwrap(),
                params: &params,
                context,
                salt,
                nonce_prefix: prefix,
            },
            &pt,
        )
        .unwrap();
        println!("### Vector {}: {title}\n```text", n + 1);
        println!("aead          = {:02x}", alg.id());
        println!("segment_size  = 256");
        println!("key           = {}", hex::encode(&key));
        println!("key_id        = {}", hex::encode(key_id));
        println!("salt          = {}", hex::encode(salt));
        println!("nonce_prefix  = {}", hex::encode(prefix));
        println!("context       = {}", hex::encode(context));
        if let Some(e) = &envelope {
            println!("envelope      = {}", hex::encode(e));
        }
        println!("plaintext_len = {len}");
        println!("plaintext     = {}", hex::encode(&pt));
        println!("ciphertext    = {}", hex::encode(&sealed));
        println!("```\n");
    }
}
