//! Benchmark drivers: a sealed stream and a plaintext stream with the same IO
//! pattern (same segment-sized writes at the same offsets, same backend, same queue
//! depth), generating data inside the process so no caller overhead is measured.
//! Benchmarks only: the plaintext path is not a way to store data.

use exitless_io::FileOp;
use exitless_seal::DataKey;
use exitless_spill::error::Op;
use exitless_spill::file;
use exitless_spill::memory::{coalesces, COALESCE_AFTER, DIRECT_ALIGN, IO_SIZE};
use exitless_spill::pool::checkout;
use exitless_spill::{SpillError, SpillOptions, SpillReader, SpillResult, SpillWriter, StreamStats};

/// Incompressible-looking filler: an xorshift stream (content does not matter to
/// AES), made a word at a time so that making it costs little beside what is measured.
fn filler(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `total` plaintext bytes as a sealed stream, in `chunk`-byte writes.
pub fn sealed_write(
    path: &str,
    options: &SpillOptions,
    total: u64,
    chunk: usize,
) -> SpillResult<StreamStats> {
    let key = DataKey::from_array([0x42; 32]);
    let data = filler(chunk.max(1));
    let mut w = SpillWriter::create(path, &key, b"bench", options)?;
    let mut left = total;
    while left > 0 {
        let n = left.min(data.len() as u64) as usize;
        w.write(&data[..n])?;
        left -= n as u64;
    }
    w.finish()?;
    Ok(w.stats())
}

/// Reads a sealed stream written by [`sealed_write`] to the end, in `chunk`-byte reads.
pub fn sealed_read(path: &str, options: &SpillOptions, chunk: usize) -> SpillResult<StreamStats> {
    let key = DataKey::from_array([0x42; 32]);
    let mut r = SpillReader::open(path, &key, b"bench", options)?;
    let mut buf = vec![0u8; chunk.max(1)];
    while r.read(&mut buf)? > 0 {}
    Ok(r.stats())
}

/// Writes `total` bytes without sealing, in the IOs a sealed stream of the same
/// segment size makes: one segment per write below [`COALESCE_AFTER`], then as many
/// whole segments as fit [`IO_SIZE`] (segments above [`IO_SIZE`] in IOs of that
/// size), on a backend from exitless-spill's pool as a stream's is.
pub fn plain_write(path: &str, options: &SpillOptions, total: u64) -> SpillResult<StreamStats> {
    let kind = options.backend.resolve()?;
    let segment = options.params.segment_size;
    let seg = (segment as usize).min(IO_SIZE);
    let io = if coalesces(seg, options.queue_depth) { IO_SIZE / seg * seg } else { seg };
    let mut backend = checkout(kind, options.queue_depth, io, &options.ocall_model, options.uring)?;
    let base = backend.get().counters();
    let direct = options.direct == Some(true);
    let fd = file::create(backend.get(), path, direct, segment)?;
    let data = filler(io);
    let depth = backend.get().depth();
    if direct {
        // Same as the sealed writer: reserve space so direct writes run in parallel.
        let _ = backend.get().file_op(FileOp::Allocate(fd, 0, total + seg as u64));
    }
    let mut busy = vec![false; depth];
    let mut done = Vec::new();
    let segments = total.div_ceil(u64::from(segment));
    let fail = |e: std::io::Error| SpillError::io(e, Op::Write, path);
    let mut at = 0u64;
    while at < total {
        let slot = loop {
            if let Some(s) = busy.iter().position(|b| !b) {
                break s;
            }
            backend.get().wait(&mut done).map_err(fail)?;
            for c in done.drain(..) {
                busy[c.slot] = false;
                c.result.map_err(fail)?;
            }
        };
        let unit = if at < COALESCE_AFTER { seg } else { io };
        let len = (total - at).min(unit as u64) as usize;
        let pad =
            if direct { (len as u64).div_ceil(DIRECT_ALIGN) as usize * DIRECT_ALIGN as usize } else { len };
        backend.get().write(slot, fd, at, &data[..len], pad).map_err(fail)?;
        busy[slot] = true;
        at += len as u64;
    }
    while backend.get().in_flight() > 0 {
        backend.get().wait(&mut done).map_err(fail)?;
        for c in done.drain(..) {
            c.result.map_err(fail)?;
        }
    }
    if direct {
        backend.get().file_op(FileOp::Truncate(fd, total)).map_err(|e| SpillError::io(e, Op::Trim, path))?;
    }
    file::close(backend.get(), fd).map_err(|e| SpillError::io(e, Op::Close, path))?;
    Ok(StreamStats {
        io: backend.peek().counters().since(&base),
        stream_syscalls: 0,
        segments,
        plaintext_bytes: total,
        direct,
    })
}
