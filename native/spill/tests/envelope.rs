//! Format version 2 through files: the writer puts the key envelope in the header,
//! the reader reads the variable-length header in two steps, `inspect` returns it.

use exitless_io::BackendKind;
use exitless_seal::{Algorithm, DataKey, KeyId, StreamParams, MAX_ENVELOPE_LEN};
use exitless_spill::{inspect, BackendChoice, SpillError, SpillOptions, SpillReader, SpillWriter};

fn key() -> DataKey {
    DataKey::from_array([0x22; 32])
}

fn options(kind: BackendKind, segment_size: u32, envelope: Option<Vec<u8>>) -> SpillOptions {
    SpillOptions {
        params: StreamParams {
            algorithm: Algorithm::Aes256Gcm,
            segment_size,
            key_id: KeyId([0x44; 16]),
            envelope,
        },
        backend: BackendChoice::Fixed(kind),
        queue_depth: 4,
        ..SpillOptions::default()
    }
}

fn write(path: &str, opts: &SpillOptions, pt: &[u8]) {
    let mut w = SpillWriter::create(path, &key(), b"ctx", opts).unwrap();
    for c in pt.chunks(777) {
        w.write(c).unwrap();
    }
    w.finish().unwrap();
}

fn read_all(path: &str, opts: &SpillOptions) -> Result<Vec<u8>, SpillError> {
    let mut r = SpillReader::open(path, &key(), b"ctx", opts)?;
    let mut out = vec![0u8; r.plaintext_len() as usize];
    let mut done = 0;
    while done < out.len() {
        done += r.read(&mut out[done..])?;
    }
    Ok(out)
}

#[test]
fn version_2_files_round_trip_and_inspect() {
    let dir = tempfile::tempdir_in(".").unwrap();
    for kind in [BackendKind::Sync, BackendKind::Uring, BackendKind::Ocall] {
        if kind == BackendKind::Uring && exitless_io::probe::uring_availability().is_err() {
            continue;
        }
        for (seg, env_len, len) in [
            (4096u32, 59usize, 0usize),
            (4096, 1, 10_000),
            (256, 100, 3000),
            (65536, MAX_ENVELOPE_LEN, 200_000),
            (2048, MAX_ENVELOPE_LEN, 5000),
        ] {
            let env: Vec<u8> = (0..env_len).map(|i| (i * 13 + 1) as u8).collect();
            let pt: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let path = dir
                .path()
                .join(format!("{}-{seg}-{env_len}-{len}", kind.name()))
                .to_str()
                .unwrap()
                .to_owned();
            let opts = options(kind, seg, Some(env.clone()));
            write(&path, &opts, &pt);
            let bytes = std::fs::read(&path).unwrap();
            let h = 72 + env_len;
            assert_eq!(bytes[4], 2);
            assert_eq!(&bytes[72..h], &env[..]);
            assert_eq!(bytes.len() as u64, opts.params.layout().unwrap().sealed_len(len as u64).unwrap());
            let reader_opts = options(kind, 256, None); // readers take everything from the header
            assert_eq!(read_all(&path, &reader_opts).unwrap(), pt, "{path}");
            let i = inspect(&path).unwrap();
            assert_eq!(i.envelope.as_deref(), Some(&env[..]));
            assert_eq!(i.header.envelope(), Some(&env[..]));
            assert_eq!(i.header.key_id(), KeyId([0x44; 16]));
            assert_eq!(i.header.len(), h);
            assert_eq!(i.geometry.plaintext_len, len as u64);
            // Random access across segment 0 (after the long header) and beyond.
            let mut r = SpillReader::open(&path, &key(), b"ctx", &reader_opts).unwrap();
            for pos in [len / 2, 0, len.saturating_sub(1)] {
                r.seek(pos as i64, 0).unwrap();
                let mut b = [0u8; 3];
                let n = r.read(&mut b).unwrap();
                assert_eq!(&b[..n], &pt[pos..(pos + 3).min(len)]);
            }
        }
    }
}

#[test]
fn version_1_files_have_no_envelope() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("v1").to_str().unwrap().to_owned();
    write(&path, &options(BackendKind::Sync, 4096, None), b"v1 data");
    let i = inspect(&path).unwrap();
    assert_eq!(i.envelope, None);
    assert_eq!(i.header.version(), 1);
    assert_eq!(i.header.len(), 68);
    assert_eq!(read_all(&path, &options(BackendKind::Sync, 4096, None)).unwrap(), b"v1 data");
}

#[test]
fn tampered_or_truncated_headers_fail() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("v2").to_str().unwrap().to_owned();
    let opts = options(BackendKind::Sync, 4096, Some(vec![7; 300]));
    write(&path, &opts, &[5u8; 9000]);
    let good = std::fs::read(&path).unwrap();
    let bad_path = dir.path().join("bad").to_str().unwrap().to_owned();
    for i in (0..372).chain([400, 5000]) {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        std::fs::write(&bad_path, &bad).unwrap();
        match read_all(&bad_path, &opts) {
            Err(SpillError::Integrity { .. } | SpillError::Format { .. }) => {}
            other => panic!("byte {i}: {:?}", other.map(|v| v.len())),
        }
        if (72..372).contains(&i) {
            assert!(
                matches!(read_all(&bad_path, &opts), Err(SpillError::Integrity { .. })),
                "envelope byte {i}"
            );
        }
    }
    for cut in [1, 60, 68, 70, 72, 73, 200, 371, 372, 380] {
        std::fs::write(&bad_path, &good[..cut]).unwrap();
        assert!(matches!(read_all(&bad_path, &opts), Err(SpillError::Integrity { .. })), "cut {cut}");
        assert!(
            matches!(inspect(&bad_path), Err(SpillError::Integrity { .. })) || cut >= 372 + 16,
            "inspect cut {cut}"
        );
    }
    let too_small = options(BackendKind::Sync, 256, Some(vec![7; 200]));
    assert!(matches!(
        SpillWriter::create(&bad_path, &key(), b"", &too_small),
        Err(SpillError::InvalidArgument { .. })
    ));
}
