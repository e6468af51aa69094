//! Parallel sealing: a writer on a runtime of two or more vCPUs cuts the full
//! segments of a large write into chunks that its thread and the vCPUs claim from a
//! shared counter ([`Batch`]), sealed into trusted chunk buffers kept between
//! batches ([`chunk_pool`]: fresh pages cost a lot to touch first).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

use exitless_seal::Encryptor;
use zeroize::Zeroizing;

/// Plaintext sealed per parallel batch (trusted memory per stream on a runtime).
pub(crate) const BATCH_BYTES: usize = 2 << 20;

/// Plaintext sealed one segment at a time once a parallel batch found the IO to be
/// the bottleneck, before trying a parallel batch again.
pub(crate) const SERIAL_WHILE_IO_BOUND: u64 = 64 << 20;

/// Plaintext per unit of parallel work.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// Consecutive segments sealed by one worker into one trusted buffer.
pub(crate) struct Chunk {
    /// Position of the first segment in the batch's plaintext, in segments.
    pub(crate) start: usize,
    pub(crate) count: usize,
    pub(crate) buf: Zeroizing<Vec<u8>>,
}

/// Chunk buffers kept between parallel batches and streams: fresh pages cost a lot
/// to touch first. They hold ciphertext when returned and are wiped when dropped.
pub(crate) mod chunk_pool {
    use std::sync::Mutex;
    use zeroize::Zeroizing;

    /// At most this much trusted memory stays pooled.
    const KEEP_BYTES: usize = 16 << 20;

    static POOL: Mutex<Vec<Zeroizing<Vec<u8>>>> = Mutex::new(Vec::new());

    /// Up to `count` pooled buffers of exactly `len` bytes.
    pub(crate) fn take(len: usize, count: usize) -> Vec<Zeroizing<Vec<u8>>> {
        let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::with_capacity(count);
        let mut i = 0;
        while i < pool.len() && out.len() < count {
            if pool[i].len() == len {
                out.push(pool.swap_remove(i));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Bytes pooled now.
    pub(crate) fn bytes() -> usize {
        POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|b| b.len()).sum()
    }

    /// Drops (wiping) every pooled buffer.
    pub(crate) fn clear() {
        let drained = std::mem::take(&mut *POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        drop(drained);
    }

    /// Returns buffers to the pool, up to [`KEEP_BYTES`] in all.
    pub(crate) fn give(bufs: Vec<Zeroizing<Vec<u8>>>) {
        let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kept: usize = pool.iter().map(|b| b.len()).sum();
        for b in bufs {
            if kept + b.len() <= KEEP_BYTES {
                kept += b.len();
                pool.push(b);
            }
        }
    }
}

/// One batch of parallel sealing, shared by the writer's thread and the vCPUs.
/// Workers claim chunks by index from an atomic counter and never wait on each
/// other: on a VM a thread that sleeps on a contended lock wakes up late.
pub(crate) struct Batch<'a> {
    enc: &'a Encryptor,
    plaintext: &'a [u8],
    capacity: usize,
    segment: usize,
    /// Index of the segment at `plaintext[0]`.
    first: u64,
    /// Each chunk behind its own lock, which only the worker that claimed it takes.
    pub(crate) chunks: Vec<std::sync::Mutex<Chunk>>,
    claimed: AtomicUsize,
    sealed: AtomicUsize,
    started: std::time::Instant,
    /// When the last chunk was sealed, in nanoseconds after `started` (at least 1);
    /// 0 until then.
    sealed_after_ns: AtomicU64,
    pub(crate) error: std::sync::Mutex<Option<exitless_seal::Error>>,
}

impl<'a> Batch<'a> {
    /// A batch of `chunks` over `plaintext` (full segments of `capacity` bytes,
    /// sealed into `segment`-byte slots), the first being segment `first`.
    pub(crate) fn new(
        enc: &'a Encryptor,
        plaintext: &'a [u8],
        capacity: usize,
        segment: usize,
        first: u64,
        chunks: Vec<std::sync::Mutex<Chunk>>,
    ) -> Self {
        Self {
            enc,
            plaintext,
            capacity,
            segment,
            first,
            chunks,
            claimed: AtomicUsize::new(0),
            sealed: AtomicUsize::new(0),
            started: std::time::Instant::now(),
            sealed_after_ns: AtomicU64::new(0),
            error: std::sync::Mutex::new(None),
        }
    }

    /// Claims chunks until none are left: copy the plaintext in, seal each segment in place.
    pub(crate) fn work(&self) {
        self.seal_chunks();
        // The AEAD may leave key material in this thread's stack (ChaCha20 keeps
        // its key block there); vCPU stacks outlive the stream, so wipe it.
        exitless_seal::scrub_stack();
    }

    fn seal_chunks(&self) {
        let (p, seg) = (self.capacity, self.segment);
        loop {
            let c = self.claimed.fetch_add(1, Relaxed);
            let Some(chunk) = self.chunks.get(c) else { return };
            let mut guard = chunk.lock().expect("not poisoned");
            let chunk = &mut *guard;
            for k in 0..chunk.count {
                let at = (chunk.start + k) * p;
                let buf = &mut chunk.buf[k * seg..(k + 1) * seg];
                buf[..p].copy_from_slice(&self.plaintext[at..at + p]);
                let index = self.first + (chunk.start + k) as u64;
                if let Err(e) = self.enc.seal_in_place(index, false, buf, p) {
                    self.error.lock().expect("not poisoned").get_or_insert(e);
                }
            }
            drop(guard);
            if self.sealed.fetch_add(1, AcqRel) + 1 == self.chunks.len() {
                let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.sealed_after_ns.store(ns.max(1), Release);
            }
        }
    }

    /// How long sealing the whole batch took (valid once every chunk is sealed).
    pub(crate) fn seal_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.sealed_after_ns.load(Acquire))
    }

    /// Waits until every chunk is sealed. Called once all are claimed, so only chunks
    /// a worker is sealing right now remain: yield the CPU to it rather than sleep.
    pub(crate) fn wait_sealed(&self) {
        // Set (non-zero) by whoever sealed the last chunk, after counting it.
        while self.sealed_after_ns.load(Acquire) == 0 {
            std::thread::yield_now();
        }
    }
}
