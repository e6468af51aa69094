//! Writes the committed seed corpus, `fuzz/seeds/<target>/`: the test vectors of
//! docs/FORMAT.md (read from that file) framed for each target, a few streams sealed
//! here with the vectors' key and contexts, and small programs for the completion
//! validator. Deterministic: running it again rewrites the same files.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (`make fuzz-seeds`).

use std::fs;
use std::path::{Path, PathBuf};

use exitless_fuzz::{data_key, vector_streams, CONTEXTS, NONCE_PREFIX, SALT};
use exitless_seal::{seal_to_vec, Algorithm, Header, KeyId, StreamParams, TAG_LEN};

/// A test vector: its context's index in [`CONTEXTS`] and the sealed file.
struct Vector {
    name: String,
    context: u8,
    file: Vec<u8>,
}

fn vectors(format_md: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut name = String::new();
    let mut context = None;
    for line in format_md.lines() {
        if let Some(rest) = line.strip_prefix("### Vector ") {
            name = format!("vector{}", rest.split(':').next().expect("number"));
        } else if let Some(hex) = line.strip_prefix("context       =") {
            let ctx = hex::decode(hex.trim()).expect("context hex");
            let i = CONTEXTS.iter().position(|c| *c == &ctx[..]).expect("a vector context is in CONTEXTS");
            context = Some(i as u8);
        } else if let Some(hex) = line.strip_prefix("ciphertext    =") {
            let file = hex::decode(hex.trim()).expect("ciphertext hex");
            out.push(Vector { name: name.clone(), context: context.take().expect("context first"), file });
        }
    }
    assert_eq!(out.len(), 5, "docs/FORMAT.md has five test vectors");
    out
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn seal(context: u8, params: &StreamParams, len: usize) -> Vec<u8> {
    let ctx = CONTEXTS[usize::from(context)];
    seal_to_vec(
        &exitless_seal::SealSpec {
            key: &data_key(),
            params,
            context: ctx,
            salt: SALT,
            nonce_prefix: NONCE_PREFIX,
        },
        &plaintext(len),
    )
    .expect("seal")
}

fn framed(prefix: &[u8], file: &[u8]) -> Vec<u8> {
    [prefix, file].concat()
}

/// One completion-program op: `code, a, b, c, x (u32 LE)`.
fn op(code: u8, a: u8, b: u8, c: u8, x: u32) -> [u8; 8] {
    let x = x.to_le_bytes();
    [code, a, b, c, x[0], x[1], x[2], x[3]]
}

fn program(header: [u8; 3], ops: &[[u8; 8]]) -> Vec<u8> {
    let mut p = header.to_vec();
    ops.iter().for_each(|o| p.extend_from_slice(o));
    p
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let format_md = fs::read_to_string(root.join("../docs/FORMAT.md")).expect("docs/FORMAT.md");
    let vectors = vectors(&format_md);
    let seeds = root.join("seeds");
    let mut written = 0usize;
    let mut put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        fs::create_dir_all(&dir).expect("seed dir");
        fs::write(dir.join(name), bytes).expect("write seed");
        written += bytes.len();
    };
    let clear = |dir: &Path| {
        if dir.exists() {
            fs::remove_dir_all(dir).expect("clear seeds");
        }
    };
    clear(&seeds);

    // Streams sealed here: version 2 with ChaCha20 and a full-size envelope, a version-2
    // empty stream, and a version-1 stream of many small segments.
    let v2_chacha = StreamParams {
        algorithm: Algorithm::ChaCha20Poly1305,
        segment_size: 1280,
        key_id: KeyId([0x44; 16]),
        envelope: Some(vec![0xe5; 1024]),
    };
    let v2_small = StreamParams {
        algorithm: Algorithm::Aes256Gcm,
        segment_size: 256,
        key_id: KeyId::NONE,
        envelope: Some(vec![7]),
    };
    let v1_many = StreamParams { segment_size: 256, ..StreamParams::default() };
    let sealed = [
        ("v2-chacha-1k-envelope", 2u8, seal(2, &v2_chacha, 1500)),
        ("v2-empty", 3, seal(3, &v2_small, 0)),
        ("v1-many-segments", 0, seal(0, &v1_many, 3000)),
    ];

    // header: whole files, bare headers, a cut inside the envelope.
    for v in &vectors {
        put("header", &format!("{}-file", v.name), &v.file);
        let h = Header::parse(&v.file).expect("vector header");
        put("header", &format!("{}-header", v.name), h.as_bytes());
    }
    let big = Header::parse(&sealed[0].2).expect("v2 header");
    put("header", "v2-1k-envelope-header", big.as_bytes());
    put("header", "v2-cut-in-envelope", &big.as_bytes()[..600]);

    // segment: each segment of vectors 2, 3 and 5, as `stream ‖ index ‖ flags ‖ segment`.
    let streams = vector_streams();
    for (which, v) in [(0u8, &vectors[1]), (1, &vectors[2]), (2, &vectors[4])] {
        let header = streams[usize::from(which)].header();
        assert_eq!(header.as_bytes(), &v.file[..header.len()], "{} parameters", v.name);
        let layout = exitless_seal::Layout::new(header.segment_size(), header.len()).expect("layout");
        let g = layout.for_file(v.file.len() as u64).expect("geometry");
        for index in 0..g.segments {
            let last = index == g.final_index();
            let len = if last { g.final_len } else { layout.capacity(index) + TAG_LEN };
            let start = layout.offset(index) as usize;
            let seed = framed(&[which, index as u8, u8::from(last)], &v.file[start..start + len]);
            put("segment", &format!("{}-segment{index}", v.name), &seed);
        }
    }

    // stream, python: `context ‖ file`; ffi_reader: `selector ‖ chunk ‖ file`.
    let files = vectors
        .iter()
        .map(|v| (v.name.as_str(), v.context, &v.file))
        .chain(sealed.iter().map(|(n, c, f)| (*n, *c, f)));
    for (i, (name, context, file)) in files.enumerate() {
        put("stream", name, &framed(&[context], file));
        put("python", name, &framed(&[context], file));
        // Alternate sync and OCALL backends, vary queue depth and read size.
        let selector = context | (((i as u8) & 1) << 2) | (((i as u8) % 4) << 5);
        put("ffi_reader", name, &framed(&[selector, 1 + (i as u8) * 29], file));
    }

    // completions: a SlotTable program and two RingSlots programs (see the target's docs).
    let eintr = exitless_io::validate::ALLOWED_ERRNOS.iter().position(|&e| e == 4).expect("EINTR") as u32;
    put(
        "completions",
        "slot-table",
        &program(
            [0, 3, 0],
            &[
                op(0, 0, 0, 0, 4096), // start slot 0, 4096 bytes
                op(1, 0, 0, 0, 0),    // its completion, in full
                op(0, 1, 0, 0, 100),  // start slot 1
                op(1, 0, 1, 1, 0),    // a stale completion
                op(1, 3, 0, 1, 0),    // too long
                op(1, 5, 0, 1, 200),  // unknown errno
                op(1, 4, 0, 1, 1),    // an allowed errno
                op(1, 0, 0, 1, 0),    // a duplicate
                op(1, 0, 2, 1, 0),    // a slot out of range
                op(2, 8, 0, 0, 9),    // the ring claims 9 of 8 entries
            ],
        ),
    );
    put(
        "completions",
        "ring-write-fsync",
        &program(
            [1, 1, 67],
            &[
                op(0, 0, 1, 3, 1000 << 8), // begin: write 1000 bytes on slot 0
                op(2, 0, 0, 0, 0),         // submit it
                op(3, 1, 0, 0, 0),         // a short completion: resubmit
                op(2, 0, 0, 0, 0),         // submit the rest
                op(3, 0, 0, 0, 0),         // complete it
                op(1, 0, 0, 3, 0),         // begin an fsync
                op(2, 1, 0, 0, 0),         // submit it
                op(3, 4, 0, 1, eintr),     // EINTR: resubmit
                op(2, 1, 0, 0, 0),         // submit again
                op(3, 0, 1, 1, 0),         // a stale completion
                op(3, 0, 0, 1, 0),         // the real one
                op(4, 0, 0, 0, 5),         // ring fill level
                op(5, 0, 0, 0, 100),       // copy out
            ],
        ),
    );
    put(
        "completions",
        "ring-read-eof",
        &program(
            [1, 2, 200],
            &[
                op(0, 1, 0, 5, 5000 << 8), // begin: read 5000 bytes on slot 1
                op(2, 1, 0, 0, 0),
                op(3, 2, 0, 1, 0), // 0 bytes: end of file
                op(0, 2, 0, 5, 100 << 8),
                op(2, 2, 0, 0, 0),
                op(3, 4, 0, 2, 2), // EDQUOT: failed
                op(0, 2, 1, 5, 100 << 8),
                op(2, 2, 0, 0, 0),
                op(3, 2, 0, 2, 0), // a write of 0 bytes: WriteZero
            ],
        ),
    );
    println!("seeds: {written} bytes in {}", seeds.display());
}
