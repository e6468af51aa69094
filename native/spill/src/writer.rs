//! [`SpillWriter`]: seal a segment in trusted memory, hand the ciphertext to the
//! backend, keep filling the next one while up to `queue_depth` are in flight.

use std::sync::Arc;

use exitless_io::{BackendKind, FileOp, RawFd};
use exitless_seal::{DataKey, Encryptor, Layout};

use crate::error::{Op, SpillError, SpillResult};
use crate::memory::DIRECT_ALIGN;
use crate::memory::{coalesces, slot_len, GrowBuf, COALESCE_AFTER, IO_SIZE};
use crate::options::SpillOptions;
use crate::pipe::{Pipe, PipeError};
use crate::pool::checkout;
use crate::randomness::fresh_randomness;
use crate::sealing::{chunk_pool, Batch, Chunk, BATCH_BYTES, CHUNK_BYTES, SERIAL_WHILE_IO_BOUND};
use crate::stats::StreamStats;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Failed,
    Finished,
}

/// Writes one sealed stream.
pub struct SpillWriter {
    path: String,
    /// The file; closed (through the backend) once `closed`.
    fd: RawFd,
    closed: bool,
    direct: bool,
    enc: Arc<Encryptor>,
    layout: Layout,
    pipe: Pipe,
    kind: BackendKind,
    /// The runtime whose vCPUs help seal (streams on a runtime of two or more vCPUs).
    sealing: Option<exitless_rt::Runtime>,
    /// Segments still to seal one at a time: the last parallel batch found the IO
    /// to be the bottleneck.
    serial_segments: u64,
    /// Backend counters when this stream took its current backend.
    base: exitless_io::Counters,
    /// What earlier backends of this stream did (it moves to IO-sized slots once long).
    earlier: exitless_io::Counters,
    /// Whether writes of consecutive segments are coalesced yet.
    coalescing: bool,
    /// Options to check out another backend with.
    queue_depth: usize,
    ocall_model: exitless_io::OcallModel,
    uring: crate::options::UringTuning,
    faults: Option<Arc<exitless_io::FaultPlan>>,
    /// The segment being filled (for segment 0: the header, then plaintext). Trusted;
    /// grows with the data, up to one segment.
    slot: GrowBuf,
    filled: usize,
    index: u64,
    written: u64,
    /// Bytes reserved with fallocate (direct IO only; `u64::MAX` when unsupported).
    allocated: u64,
    sync: bool,
    state: State,
}

/// How far ahead a direct writer reserves space.
const PREALLOCATE_STEP: u64 = 64 << 20;

impl SpillWriter {
    /// Creates (or truncates) `path`, mode 0600, and starts a stream on it. A
    /// symlink at `path` is refused (ELOOP), never followed.
    pub fn create(path: &str, key: &DataKey, context: &[u8], options: &SpillOptions) -> SpillResult<Self> {
        let (salt, prefix) = match options.insecure_fixed_randomness {
            Some(r) => r,
            None => fresh_randomness()?,
        };
        let enc = Encryptor::new(key, &options.params, context, salt, prefix)
            .map_err(|e| SpillError::seal(e, path))?;
        let layout = enc.layout();
        let kind = options.backend.resolve()?;
        let mut backend = checkout(
            kind,
            options.queue_depth,
            slot_len(layout.segment_size() as usize),
            &options.ocall_model,
            options.uring,
        )?;
        let base = backend.get().counters();
        backend.inject(options, path)?;
        // Page cache unless O_DIRECT is asked for: measured side by side on ext4 and
        // tmpfs, a buffered io_uring stream kept pace with sync at every segment size
        // where one that turned to O_DIRECT fell to the disk's rate (docs/BENCHMARKS.md).
        let direct = options.direct == Some(true);
        let fd = crate::file::open(backend.get(), path, true, direct, layout.segment_size())?;
        let mut slot = GrowBuf::with_initial(layout.segment_size() as usize);
        // The header (68 bytes, or 72 + envelope in version 2) takes the start of slot 0.
        slot[..layout.header_len()].copy_from_slice(enc.header().as_bytes());
        let pipe = Pipe::new(backend);
        Ok(Self {
            path: path.to_owned(),
            fd,
            closed: false,
            direct,
            enc: Arc::new(enc),
            layout,
            pipe,
            kind,
            sealing: options.runtime.clone().filter(|rt| rt.vcpus() > 1),
            serial_segments: 0,
            base,
            earlier: exitless_io::Counters::default(),
            coalescing: false,
            queue_depth: options.queue_depth,
            ocall_model: options.ocall_model,
            uring: options.uring,
            faults: options.faults.clone(),
            slot,
            filled: 0,
            index: 0,
            written: 0,
            allocated: 0,
            sync: options.sync,
            state: State::Open,
        })
    }

    fn base_offset(&self) -> usize {
        if self.index == 0 {
            self.layout.header_len()
        } else {
            0
        }
    }

    fn check_open(&self) -> SpillResult {
        match self.state {
            State::Open => Ok(()),
            State::Failed => Err(SpillError::Closed { path: Some(self.path.clone()), after_failure: true }),
            State::Finished => {
                Err(SpillError::Closed { path: Some(self.path.clone()), after_failure: false })
            }
        }
    }

    /// Marks the stream failed and returns `err`.
    fn fail(&mut self, err: SpillError) -> SpillError {
        self.state = State::Failed;
        err
    }

    /// Appends plaintext. A full segment is sealed only once more data follows it,
    /// because the final segment must carry the last flag.
    pub fn write(&mut self, data: &[u8]) -> SpillResult {
        self.append(data)?;
        self.pipe.settle().map_err(|e| self.io_failed(e))
    }

    fn append(&mut self, mut data: &[u8]) -> SpillResult {
        self.check_open()?;
        while !data.is_empty() {
            let capacity = self.layout.capacity(self.index);
            if self.filled == capacity {
                self.seal_and_submit(false)?;
                data = self.seal_batch(data)?;
                continue;
            }
            let n = data.len().min(capacity - self.filled);
            let at = self.base_offset() + self.filled;
            // Room for the data and, once full, its tag: memory follows the data.
            self.slot.ensure(at + n + exitless_seal::TAG_LEN);
            self.slot[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            self.written += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// On a runtime, seals the full segments at the front of `data` that more data
    /// follows, in parallel, then submits them in order. Returns what is left. Without
    /// a runtime, or with less than two such segments, returns `data` unchanged.
    ///
    /// Batches are cut into chunks that this thread and the vCPUs take from a shared
    /// queue, so the work balances itself: a vCPU that is busy elsewhere (or not
    /// scheduled at all) just takes fewer chunks. While the vCPUs seal batch k+1, this
    /// thread submits batch k, then helps with k+1.
    fn seal_batch<'d>(&mut self, data: &'d [u8]) -> SpillResult<&'d [u8]> {
        let Some(rt) = self.sealing.clone() else { return Ok(data) };
        let seg = self.layout.segment_size() as usize;
        if self.serial_segments > 0 || seg > IO_SIZE {
            // The IO is the bottleneck: extra sealers would only take CPU from it (an
            // SQPOLL thread, the kernel's IO workers), and batches would let the queue
            // run dry while they seal. Seal and submit one segment at a time for a
            // while, as a stream without a runtime does, then measure again.
            return Ok(data);
        }
        // Large segments are sealed one at a time: chunk buffers stay small.
        let p = self.layout.capacity(self.index);
        let total = (data.len().saturating_sub(1)) / p;
        if total < 2 {
            return Ok(data);
        }
        let front = &data[..total * p];
        // Chunks of at least 256 KiB amortize the queue; batches bound trusted memory.
        let per_chunk = (CHUNK_BYTES / seg).max(1);
        let per_batch = per_chunk * (BATCH_BYTES / CHUNK_BYTES);
        let first = self.index;
        // One helper task per vCPU; this thread works too. Claiming is dynamic, so a
        // helper that starts late (or never) only means this thread seals more.
        let helpers = rt.vcpus();
        // Trusted chunk buffers, up to two batches' worth (the vCPUs seal one while
        // this thread submits the other), borrowed from the pool for this call only:
        // an idle stream holds none, so a thousand open streams cost a slot each.
        let mut free = chunk_pool::take(per_chunk * seg, 2 * per_batch / per_chunk);
        let enc = self.enc.clone();
        let outcome = rt.scope(|s| -> SpillResult<usize> {
            let mut prev: Option<Arc<Batch<'_>>> = None;
            let mut next = 0usize;
            loop {
                // No new batch once the IO turned out to be the bottleneck.
                let current = (next < total && self.serial_segments == 0).then(|| {
                    let count = per_batch.min(total - next);
                    let chunks = (0..count.div_ceil(per_chunk))
                        .map(|c| {
                            let n = per_chunk.min(count - c * per_chunk);
                            let mut buf = free.pop().unwrap_or_default();
                            buf.resize(per_chunk * seg, 0);
                            let start = next + c * per_chunk;
                            std::sync::Mutex::new(Chunk { start, count: n, buf })
                        })
                        .collect();
                    let batch = Arc::new(Batch::new(&enc, front, p, seg, first, chunks));
                    for _ in 0..helpers {
                        let b = batch.clone();
                        drop(s.spawn(async move { b.work() }));
                    }
                    next += count;
                    batch
                });
                if let Some(batch) = prev.take() {
                    // Helpers that have not started yet find the queue empty: wait
                    // only for chunks in progress, never for a vCPU to wake up.
                    batch.work();
                    batch.wait_sealed();
                    if let Some(e) = batch.error.lock().expect("not poisoned").take() {
                        return Err(self.fail(SpillError::seal(e, &self.path)));
                    }
                    let sealed = p + exitless_seal::TAG_LEN;
                    let start = std::time::Instant::now();
                    for chunk in &batch.chunks {
                        let mut chunk = chunk.lock().expect("not poisoned");
                        for k in 0..chunk.count {
                            let index = first + (chunk.start + k) as u64;
                            self.submit(index, &chunk.buf[k * seg..k * seg + sealed])?;
                        }
                        free.push(std::mem::take(&mut chunk.buf));
                    }
                    // IO-bound: handing the batch to the IO took longer than sealing it.
                    if start.elapsed() > batch.seal_time() {
                        self.serial_segments = SERIAL_WHILE_IO_BOUND / seg as u64;
                    }
                }
                match current {
                    Some(batch) => {
                        batch.work();
                        prev = Some(batch);
                    }
                    None => return Ok(next),
                }
            }
        });
        chunk_pool::give(free);
        let done = outcome?;
        self.index += done as u64;
        self.written += (done * p) as u64;
        Ok(&data[done * p..])
    }

    /// An IO failure: the stream fails, naming the segment.
    fn io_failed(&mut self, (e, segment): PipeError) -> SpillError {
        let err = SpillError::io(e, Op::Write, &self.path);
        self.fail(if segment == u64::MAX { err } else { err.at_segment(segment) })
    }

    /// Hands sealed segment `index` (with the header in front for segment 0) to the pipe.
    fn submit(&mut self, index: u64, bytes: &[u8]) -> SpillResult {
        if !self.coalescing && index > 0 && self.layout.offset(index) >= COALESCE_AFTER {
            self.start_coalescing()?;
        }
        let len = bytes.len();
        let pad_to = if self.direct {
            (len as u64).div_ceil(DIRECT_ALIGN) as usize * DIRECT_ALIGN as usize
        } else {
            len
        };
        let offset = if index == 0 { 0 } else { self.layout.offset(index) };
        if self.direct && offset + pad_to as u64 > self.allocated {
            self.preallocate(offset + pad_to as u64)?;
        }
        self.pipe.submit(self.fd, index, offset, bytes, pad_to).map_err(|e| self.io_failed(e))
    }

    fn seal_and_submit(&mut self, last: bool) -> SpillResult {
        let base = self.base_offset();
        self.slot.ensure(base + self.filled + exitless_seal::TAG_LEN);
        let sealed = match self.enc.seal_in_place(self.index, last, &mut self.slot[base..], self.filled) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(SpillError::seal(e, &self.path))),
        };
        let slot = self.slot.take();
        let submitted = self.submit(self.index, &slot[..base + sealed]);
        self.slot.put_back(slot);
        submitted?;
        self.index += 1;
        self.filled = 0;
        self.serial_segments = self.serial_segments.saturating_sub(1);
        Ok(())
    }

    /// A stream that has grown long moves to a backend with IO-sized slots (from
    /// the pool, like any other) and coalesces consecutive segments into one write
    /// each: 4 KiB segments then reach the disk in 1 MiB writes. Short streams never
    /// get here, so their pooled backends stay small. Segments of an IO or more, and
    /// queue depths whose IO-sized buffers would exceed the per-stream limit, keep
    /// the slots they have.
    fn start_coalescing(&mut self) -> SpillResult {
        self.coalescing = true;
        if !coalesces(self.layout.segment_size() as usize, self.queue_depth) {
            return Ok(());
        }
        let mut backend = checkout(self.kind, self.queue_depth, IO_SIZE, &self.ocall_model, self.uring)?;
        if let Some(plan) = &self.faults {
            // The same plan: it counts this stream's operations across both backends.
            backend.get().set_faults(Some(plan.clone()));
        }
        // Completions are counted when reaped: drain first, then take the old counters.
        self.pipe.drain().map_err(|e| self.io_failed(e))?;
        let before = self.pipe.counters();
        self.pipe.coalesce_into(backend).map_err(|e| self.io_failed(e))?;
        self.earlier.add(&before.since(&self.base));
        self.base = self.pipe.counters();
        Ok(())
    }

    /// Direct writes that extend a file are serialized by the file system (each one
    /// changes its size); writes into preallocated space run in parallel. So a direct
    /// writer reserves space ahead in large steps (one syscall per step) and trims the
    /// file to its exact length when it finishes. An unfinished file keeps the zeros,
    /// so it never reads back as a whole stream.
    fn preallocate(&mut self, needed: u64) -> SpillResult {
        // Grow geometrically (small spill files reserve little), at most 64 MiB a step.
        let step = self.allocated.clamp(u64::from(self.layout.segment_size()) * 8, PREALLOCATE_STEP);
        let target = needed.max(self.allocated + step);
        for goal in [target, needed] {
            let (fd, from) = (self.fd, self.allocated);
            match self.pipe.with_backend(|b| b.file_op(FileOp::Allocate(fd, from, goal - from))) {
                Ok(_) => {
                    self.allocated = goal;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
                Err(_) => break,
            }
        }
        // No room to reserve ahead (or no support for it): write without reserving;
        // a write that truly does not fit reports ENOSPC itself.
        self.allocated = u64::MAX;
        Ok(())
    }

    /// Seals the final segment, waits for every write, trims direct-IO padding and
    /// (if asked) syncs. Only after this returns `Ok` is the stream complete; after
    /// an error the file is left incomplete and never reads back as a whole stream.
    pub fn finish(&mut self) -> SpillResult {
        self.check_open()?;
        self.seal_and_submit(true)?;
        self.pipe.drain().map_err(|e| self.io_failed(e))?;
        let file_len = self.layout.sealed_len(self.written).expect("checked while writing");
        let fd = self.fd;
        if self.direct && (file_len % DIRECT_ALIGN != 0 || self.allocated > file_len) {
            if let Err(e) = self.pipe.with_backend(|b| b.file_op(FileOp::Truncate(fd, file_len))) {
                return Err(self.fail(SpillError::io(e, Op::Trim, &self.path)));
            }
        }
        if self.sync {
            if let Err(e) = self.pipe.with_backend(|b| b.fsync(fd)) {
                return Err(self.fail(SpillError::io(e, Op::Sync, &self.path)));
            }
        }
        self.state = State::Finished;
        if let Err(e) = self.close_file() {
            // The bytes are written; a close that fails (NFS reports late write
            // errors here) still means they may not be on the file.
            self.state = State::Failed;
            return Err(SpillError::io(e, Op::Close, &self.path));
        }
        Ok(())
    }

    /// Closes the file through the backend, once.
    fn close_file(&mut self) -> std::io::Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let fd = self.fd;
        self.pipe.with_backend(|b| crate::file::close(b, fd))
    }

    /// Closes the file (through the backend, counted in [`stats`](Self::stats))
    /// after waiting for writes in flight. An unfinished stream is left incomplete.
    /// Idempotent; dropping the writer does it too.
    pub fn close(&mut self) {
        self.pipe.close();
        if self.close_file().is_err() && self.state == State::Open {
            self.state = State::Failed;
        }
    }

    /// Plaintext bytes accepted so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Whether the file is written with O_DIRECT.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The backend this stream uses.
    pub fn backend_kind(&self) -> exitless_io::BackendKind {
        self.kind
    }

    /// Whether full segments are sealed in parallel on a runtime's vCPUs.
    pub fn is_parallel(&self) -> bool {
        self.sealing.is_some()
    }

    /// What this stream did so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            io: {
                let mut io = self.earlier;
                io.add(&self.pipe.counters().since(&self.base));
                io
            },
            // Its file's whole life goes through the backend (`io.file_ops`).
            stream_syscalls: 0,
            segments: self.index,
            plaintext_bytes: self.written,
            direct: self.direct,
        }
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        // An unfinished writer leaves an incomplete file; its in-flight writes still
        // complete before the backend goes back to the pool.
        self.close();
    }
}
