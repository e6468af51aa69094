//! SealedFile over an in-memory device: POSIX-like operations against a model, the
//! bytes on the device against the format's own reader, and a hostile host.

use std::sync::atomic::{AtomicU64, Ordering};

use exitless_seal::{open_to_vec, DataKey, StreamParams};
use exitless_sealedfs::{DeviceError, MemDevice, SealedFile};

const SEG: u32 = 4096;
const CTX: &[u8] = b"exitless sealedfs v1\0/spill";

fn random(buf: &mut [u8]) -> Result<(), DeviceError> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for chunk in buf.chunks_mut(8) {
        let v = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    Ok(())
}

fn key() -> DataKey {
    DataKey::from_array([42; 32])
}

fn params() -> StreamParams {
    StreamParams { segment_size: SEG, ..StreamParams::default() }
}

fn new_file() -> SealedFile<MemDevice> {
    SealedFile::create(MemDevice::new(), key(), CTX, &params(), random).unwrap()
}

fn reopen(f: SealedFile<MemDevice>) -> SealedFile<MemDevice> {
    let mut f = f;
    let data = std::mem::take(&mut f.device_mut().data);
    let dev = MemDevice::with_data(data);
    SealedFile::open(dev, key(), CTX, &params(), random).unwrap()
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn read_all(f: &mut SealedFile<MemDevice>) -> Vec<u8> {
    let mut out = vec![0u8; f.len() as usize];
    assert_eq!(f.read_at(0, &mut out).unwrap(), out.len());
    out
}

/// The device holds a complete stream that the format's reader opens to `expect`.
fn assert_stream(f: &SealedFile<MemDevice>, expect: &[u8]) {
    assert_eq!(f.device().queued(), 0);
    assert_eq!(open_to_vec(&key(), &f.device().data, CTX).unwrap(), expect);
}

#[test]
fn appends_read_back_while_writing_and_after_reopening() {
    let data = pattern(5 * SEG as usize + 123, 1);
    let mut f = new_file();
    let mut pos = 0;
    for (i, chunk) in data.chunks(777).enumerate() {
        assert_eq!(f.write_at(pos as u64, chunk).unwrap(), chunk.len());
        pos += chunk.len();
        if i % 3 == 0 {
            // Read across sealed segments and the trusted tail mid-stream.
            let mut got = vec![0u8; pos];
            assert_eq!(f.read_at(0, &mut got).unwrap(), pos);
            assert_eq!(got, &data[..pos]);
        }
    }
    assert!(!f.is_finalized());
    f.finalize().unwrap();
    assert_stream(&f, &data);
    let mut f = reopen(f);
    assert_eq!(f.len(), data.len() as u64);
    assert_eq!(read_all(&mut f), data);
    let mut mid = vec![0u8; 5000];
    assert_eq!(f.read_at(3000, &mut mid).unwrap(), 5000);
    assert_eq!(mid, &data[3000..8000]);
    assert_eq!(f.read_at(data.len() as u64, &mut mid).unwrap(), 0);
}

#[test]
fn lengths_at_segment_boundaries_and_the_empty_stream() {
    let p0 = (SEG as usize) - 68 - 16;
    let p = (SEG as usize) - 16;
    for n in [0, 1, p0 - 1, p0, p0 + 1, p0 + p, p0 + p + 1, p0 + 2 * p] {
        let data = pattern(n, 7);
        let mut f = new_file();
        f.write_at(0, &data).unwrap();
        f.finalize().unwrap();
        assert_stream(&f, &data);
        let mut f = reopen(f);
        assert_eq!(read_all(&mut f), data, "length {n}");
    }
}

#[test]
fn overwrites_in_the_tail_stay_in_trusted_memory() {
    let mut f = new_file();
    let mut model = pattern(SEG as usize + 500, 3);
    f.write_at(0, &model).unwrap();
    let writes = f.device().writes;
    let tail_pos = model.len() as u64 - 100;
    f.write_at(tail_pos, b"patched").unwrap();
    model[tail_pos as usize..tail_pos as usize + 7].copy_from_slice(b"patched");
    assert_eq!(f.device().writes, writes, "no device write for a tail overwrite");
    f.finalize().unwrap();
    assert_stream(&f, &model);
}

#[test]
fn overwrites_below_the_tail_reseal_under_a_fresh_salt() {
    let mut f = new_file();
    let mut model = pattern(3 * SEG as usize, 5);
    f.write_at(0, &model).unwrap();
    f.finalize().unwrap();
    let old_header = f.device().data[..68].to_vec();
    f.write_at(10, b"0123456789").unwrap();
    model[10..20].copy_from_slice(b"0123456789");
    assert_eq!(read_all(&mut f), model);
    f.finalize().unwrap();
    assert_ne!(f.device().data[..68], old_header[..], "a rewrite draws a new salt");
    assert_stream(&f, &model);
}

#[test]
fn appending_to_a_reopened_file_reseals_it() {
    let mut f = new_file();
    let mut model = pattern(2 * SEG as usize + 10, 9);
    f.write_at(0, &model).unwrap();
    f.finalize().unwrap();
    let mut f = reopen(f);
    let more = pattern(999, 11);
    f.write_at(model.len() as u64, &more).unwrap();
    model.extend_from_slice(&more);
    f.finalize().unwrap();
    assert_stream(&f, &model);
}

#[test]
fn truncation_and_extension() {
    let mut f = new_file();
    let mut model = pattern(4 * SEG as usize, 13);
    f.write_at(0, &model).unwrap();
    // Inside the tail: memory only.
    let n = model.len() - 10;
    f.set_len(n as u64).unwrap();
    model.truncate(n);
    assert_eq!(read_all(&mut f), model);
    // Into sealed data: a rewrite, and the host file shrinks when finalized.
    f.set_len(SEG as u64 + 7).unwrap();
    model.truncate(SEG as usize + 7);
    assert_eq!(read_all(&mut f), model);
    f.finalize().unwrap();
    assert_stream(&f, &model);
    // Extension reads as zeros; a write past the end leaves a zero gap.
    f.set_len(model.len() as u64 + 50).unwrap();
    model.resize(model.len() + 50, 0);
    f.write_at(model.len() as u64 + 20, b"x").unwrap();
    model.resize(model.len() + 20, 0);
    model.push(b'x');
    f.finalize().unwrap();
    assert_stream(&f, &model);
    f.set_len(0).unwrap();
    f.finalize().unwrap();
    assert_stream(&f, b"");
    assert_eq!(f.device().data.len(), 68 + 16);
}

#[test]
fn a_hostile_host_gets_errors_never_plaintext() {
    let data = pattern(3 * SEG as usize + 1, 17);
    let mut f = new_file();
    f.write_at(0, &data).unwrap();
    f.finalize().unwrap();
    let good = f.device().data.clone();
    let open = |bytes: Vec<u8>, ctx: &[u8], k: DataKey| {
        SealedFile::open(MemDevice::with_data(bytes), k, ctx, &params(), random)
    };

    // A flipped byte in a middle segment: open succeeds (final segment fine), the
    // read of that segment fails with EIO.
    let mut bad = good.clone();
    bad[SEG as usize + 100] ^= 1;
    let mut g = open(bad, CTX, key()).unwrap();
    let mut buf = vec![0u8; 100];
    assert_eq!(g.read_at(0, &mut buf).unwrap(), 100, "segment 0 is intact");
    let e = g.read_at(SEG as u64, &mut buf).unwrap_err();
    assert!(e.is_integrity(), "{e}");
    assert_eq!(e.errno(), 5);

    // Truncation, segment swap, another mount's context, another key: open fails.
    let cut = good[..good.len() - SEG as usize].to_vec();
    assert!(open(cut, CTX, key()).is_err());
    let mut swapped = good.clone();
    let (a, b) = (SEG as usize, 2 * SEG as usize);
    let seg1 = swapped[a..b].to_vec();
    swapped.copy_within(b..b + SEG as usize, a);
    swapped[b..b + SEG as usize].copy_from_slice(&seg1);
    let mut g = open(swapped, CTX, key()).unwrap();
    assert!(g.read_at(SEG as u64, &mut buf).unwrap_err().is_integrity());
    assert!(open(good.clone(), b"exitless sealedfs v1\0/other", key()).err().unwrap().is_integrity());
    assert!(open(good, CTX, DataKey::from_array([1; 32])).err().unwrap().is_integrity());
}

/// Random operations against a plain `Vec<u8>` model; after every finalize the
/// device holds a stream the format's reader opens to the model.
#[test]
fn random_operations_match_a_model() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n.max(1)
    };
    for round in 0..20 {
        let mut f = new_file();
        let mut model: Vec<u8> = Vec::new();
        for step in 0..60 {
            let len = model.len() as u64;
            match rnd(10) {
                0..=4 => {
                    let data = pattern(rnd(3 * SEG as u64) as usize, step as u8);
                    let pos = if rnd(3) == 0 { rnd(len + 100) } else { len };
                    f.write_at(pos, &data).unwrap();
                    if !data.is_empty() {
                        let end = pos as usize + data.len();
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[pos as usize..end].copy_from_slice(&data);
                    }
                }
                5 => {
                    let n = rnd(len + SEG as u64);
                    f.set_len(n).unwrap();
                    model.resize(n as usize, 0);
                }
                6 => {
                    f.finalize().unwrap();
                    assert_stream(&f, &model);
                }
                7 => f = reopen_or_flush(f),
                _ => {
                    let pos = rnd(len + 10);
                    let mut buf = vec![0u8; rnd(2 * SEG as u64) as usize];
                    let n = f.read_at(pos, &mut buf).unwrap();
                    let expect = model.get(pos as usize..).map_or(&[][..], |m| &m[..m.len().min(buf.len())]);
                    assert_eq!(&buf[..n], expect, "round {round} step {step}");
                }
            }
            assert_eq!(f.len(), model.len() as u64);
        }
        f.finalize().unwrap();
        assert_stream(&f, &model);
        let mut f = reopen(f);
        assert_eq!(read_all(&mut f), model);
    }
}

fn reopen_or_flush(mut f: SealedFile<MemDevice>) -> SealedFile<MemDevice> {
    f.finalize().unwrap();
    reopen(f)
}
