//! [`SpillWriter`]: seal a segment in trusted memory, hand the ciphertext to the
//! backend, keep filling the next one while up to `queue_depth` are in flight.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use exitless_io::BackendKind;
use exitless_seal::{DataKey, Encryptor, Layout, HEADER_LEN};
use zeroize::Zeroizing;

use crate::error::{SpillError, SpillResult};
use crate::options::{checkout, SpillOptions, DIRECT_ALIGN};
use crate::pipe::{Pipe, PipeError};
use crate::stats::{delta, StreamStats};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Failed,
    Finished,
}

/// Writes one sealed stream.
pub struct SpillWriter {
    path: String,
    file: File,
    direct: bool,
    enc: std::sync::Arc<Encryptor>,
    layout: Layout,
    pipe: Pipe,
    kind: BackendKind,
    /// Trusted buffers for segments sealed in parallel (runtime streams only): two
    /// sets, so the vCPUs seal one batch while this thread submits the other.
    batch: [Vec<Zeroizing<Vec<u8>>>; 2],
    /// Backend counters when this stream took the backend.
    base: exitless_io::Counters,
    /// The segment being filled (for segment 0: the header, then plaintext). Trusted.
    slot: Zeroizing<Vec<u8>>,
    filled: usize,
    index: u64,
    written: u64,
    stream_syscalls: u64,
    /// Bytes reserved with fallocate (direct IO only; `u64::MAX` when unsupported).
    allocated: u64,
    sync: bool,
    state: State,
}

/// Plaintext sealed per parallel batch (trusted memory per stream on a runtime).
const BATCH_BYTES: usize = 4 << 20;

/// How far ahead a direct writer reserves space.
const PREALLOCATE_STEP: u64 = 64 << 20;

/// A fresh salt and nonce prefix from the OS, for a new stream.
pub fn fresh_randomness() -> SpillResult<([u8; 32], [u8; 7])> {
    let mut salt = [0u8; 32];
    let mut prefix = [0u8; 7];
    getrandom::getrandom(&mut salt)
        .and_then(|()| getrandom::getrandom(&mut prefix))
        .map_err(|e| SpillError::InvalidArgument(format!("no randomness from the OS: {e}")))?;
    Ok((salt, prefix))
}

/// Decides O_DIRECT for a stream and opens the file accordingly. Returns the file,
/// whether it is direct, and the syscalls made.
pub(crate) fn open_file(
    path: &str,
    write: bool,
    kind: BackendKind,
    want: Option<bool>,
    segment_size: Option<u32>,
) -> SpillResult<(File, bool, u64)> {
    let aligned = segment_size.is_none_or(|s| u64::from(s) % DIRECT_ALIGN == 0);
    if want == Some(true) && !aligned {
        return Err(SpillError::InvalidArgument(format!(
            "{path}: direct IO needs a segment size that is a multiple of 4096"
        )));
    }
    let try_direct = want == Some(true) || (kind == BackendKind::Uring && want.is_none() && aligned);
    let open = |direct: bool| {
        let mut o = OpenOptions::new();
        if write {
            o.write(true).create(true).truncate(true).mode(0o600);
        } else {
            o.read(true);
        }
        o.custom_flags(if direct { libc::O_DIRECT } else { 0 }).open(path)
    };
    if try_direct {
        match open(true) {
            Ok(f) => return Ok((f, true, 1)),
            // Some file systems (tmpfs) refuse O_DIRECT: fall back unless it was required.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && want.is_none() => {}
            Err(e) => {
                return Err(SpillError::io(&e, if write { "cannot create" } else { "cannot open" }, path))
            }
        }
    }
    let calls = if try_direct { 2 } else { 1 };
    open(false)
        .map(|f| (f, false, calls))
        .map_err(|e| SpillError::io(&e, if write { "cannot create" } else { "cannot open" }, path))
}

impl SpillWriter {
    /// Creates (or truncates) `path`, mode 0600, and starts a stream on it.
    pub fn create(path: &str, key: &DataKey, context: &[u8], options: &SpillOptions) -> SpillResult<Self> {
        let (salt, prefix) = match options.insecure_fixed_randomness {
            Some(r) => r,
            None => fresh_randomness()?,
        };
        let enc = Encryptor::new(key, &options.params, context, salt, prefix)
            .map_err(|e| SpillError::seal(&e, path))?;
        let layout = enc.layout();
        let kind = options.backend.resolve()?;
        let (file, direct, calls) = open_file(path, true, kind, options.direct, Some(layout.segment_size()))?;
        let mut backend = checkout(
            kind,
            options.queue_depth,
            layout.segment_size() as usize,
            direct,
            &options.ocall_model,
            options.uring_spin,
        )?;
        let base = backend.get().counters();
        backend.get().attach(file.as_raw_fd()).map_err(|e| SpillError::io(&e, "cannot attach", path))?;
        let mut slot = Zeroizing::new(vec![0u8; layout.segment_size() as usize]);
        slot[..HEADER_LEN].copy_from_slice(enc.header().as_bytes());
        let pipe = match &options.runtime {
            Some(rt) if rt.vcpus() > 1 => Pipe::driven(backend, rt.clone()),
            _ => Pipe::direct(backend),
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            direct,
            enc: std::sync::Arc::new(enc),
            layout,
            pipe,
            kind,
            batch: [Vec::new(), Vec::new()],
            base,
            slot,
            filled: 0,
            index: 0,
            written: 0,
            stream_syscalls: calls,
            allocated: 0,
            sync: options.sync,
            state: State::Open,
        })
    }

    fn base_offset(&self) -> usize {
        if self.index == 0 {
            HEADER_LEN
        } else {
            0
        }
    }

    fn check_open(&self) -> SpillResult {
        match self.state {
            State::Open => Ok(()),
            State::Failed => Err(SpillError::Closed(format!(
                "{}: an earlier write failed; the stream is incomplete",
                self.path
            ))),
            State::Finished => Err(SpillError::Closed(format!("{}: writer is closed", self.path))),
        }
    }

    /// Marks the stream failed and returns `err`.
    fn fail(&mut self, err: SpillError) -> SpillError {
        self.state = State::Failed;
        err
    }

    /// Appends plaintext. A full segment is sealed only once more data follows it,
    /// because the final segment must carry the last flag.
    pub fn write(&mut self, mut data: &[u8]) -> SpillResult {
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
            self.slot[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            self.written += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// On a runtime, seals the full segments at the front of `data` that more data
    /// follows, in parallel on the vCPUs (while earlier writes are in flight), then
    /// submits them in order. Returns what is left. Without a runtime, or with less
    /// than two such segments, returns `data` unchanged.
    fn seal_batch<'d>(&mut self, data: &'d [u8]) -> SpillResult<&'d [u8]> {
        let Some(rt) = self.pipe.runtime().cloned() else { return Ok(data) };
        let p = self.layout.capacity(self.index);
        let seg = self.layout.segment_size() as usize;
        let vcpus = rt.vcpus();
        // Enough work per batch to amortize waking the vCPUs, bounded in memory.
        let per_batch = (BATCH_BYTES / seg).max(vcpus * 2);
        let total = (data.len().saturating_sub(1)) / p;
        if total < 2 {
            return Ok(data);
        }
        let (front, rest) = data.split_at(total * p);
        let mut free: Vec<Vec<Zeroizing<Vec<u8>>>> = self.batch.iter_mut().map(std::mem::take).collect();
        let first = self.index;
        type Sealed = (Vec<Zeroizing<Vec<u8>>>, Result<(), exitless_seal::Error>);
        let outcome = rt.scope(|s| -> SpillResult {
            // Up to two batches in flight: the vCPUs seal one while this thread
            // hands the previous one to the IO pipe.
            let mut pending: std::collections::VecDeque<(
                u64,
                usize,
                Vec<exitless_rt::ScopedJoinHandle<'_, Sealed>>,
            )> = std::collections::VecDeque::new();
            let mut next = 0usize;
            while next < total || !pending.is_empty() {
                if next < total && !free.is_empty() {
                    let count = per_batch.min(total - next);
                    let mut set = free.pop().expect("checked");
                    set.resize_with(per_batch.max(set.len()), || Zeroizing::new(vec![0u8; seg]));
                    let per_task = count.div_ceil(vcpus);
                    let mut handles = Vec::with_capacity(vcpus);
                    let mut bufs = set.into_iter();
                    for t in 0..count.div_ceil(per_task) {
                        let n = per_task.min(count - t * per_task);
                        let mine: Vec<_> = bufs.by_ref().take(n).collect();
                        let start = next + t * per_task;
                        let pts = &front[start * p..(start + n) * p];
                        let enc = self.enc.clone();
                        let index = first + start as u64;
                        handles.push(s.spawn(async move {
                            let mut mine = mine;
                            let mut result = Ok(());
                            for (k, (buf, pt)) in mine.iter_mut().zip(pts.chunks_exact(p)).enumerate() {
                                buf[..p].copy_from_slice(pt);
                                if let Err(e) = enc.seal_in_place(index + k as u64, false, &mut buf[..], p) {
                                    result = Err(e);
                                    break;
                                }
                            }
                            (mine, result)
                        }));
                    }
                    let spare: Vec<_> = bufs.collect();
                    pending.push_back((first + next as u64, count, handles));
                    next += count;
                    if !spare.is_empty() {
                        // Keep the unused buffers with the set that comes back first.
                        free.push(spare);
                    }
                    continue;
                }
                let (batch_first, count, handles) = pending.pop_front().expect("loop condition");
                let mut set = Vec::with_capacity(per_batch);
                let mut failure = None;
                for h in handles {
                    match h.join() {
                        Ok((bufs, r)) => {
                            set.extend(bufs);
                            if let Err(e) = r {
                                failure.get_or_insert(e);
                            }
                        }
                        Err(exitless_rt::JoinError::Panicked(p)) => std::panic::resume_unwind(p),
                        Err(e) => panic!("sealing task ended early: {e}"),
                    }
                }
                if let Some(e) = failure {
                    return Err(self.fail(SpillError::seal(&e, &self.path)));
                }
                let sealed = p + exitless_seal::TAG_LEN;
                for (k, buf) in set.iter().take(count).enumerate() {
                    self.submit(batch_first + k as u64, &buf[..sealed])?;
                }
                free.push(set);
            }
            Ok(())
        });
        // Buffers return to the stream (merged back into two sets).
        let mut sets = free.into_iter();
        self.batch = [sets.next().unwrap_or_default(), sets.flatten().collect()];
        outcome?;
        self.index += total as u64;
        self.written += (total * p) as u64;
        Ok(rest)
    }

    /// An IO failure: the stream fails, naming the segment.
    fn io_failed(&mut self, (e, segment): PipeError) -> SpillError {
        let what = if segment == u64::MAX {
            "IO backend failed while writing".to_owned()
        } else {
            format!("cannot write segment {segment} of")
        };
        self.fail(SpillError::io(&e, &what, &self.path))
    }

    /// Hands sealed segment `index` (with the header in front for segment 0) to the pipe.
    fn submit(&mut self, index: u64, bytes: &[u8]) -> SpillResult {
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
        let fd = self.file.as_raw_fd();
        self.pipe.submit(fd, index, offset, bytes, pad_to).map_err(|e| self.io_failed(e))
    }

    fn seal_and_submit(&mut self, last: bool) -> SpillResult {
        let base = self.base_offset();
        let sealed = match self.enc.seal_in_place(self.index, last, &mut self.slot[base..], self.filled) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(SpillError::seal(&e, &self.path))),
        };
        let slot = std::mem::take(&mut self.slot);
        let submitted = self.submit(self.index, &slot[..base + sealed]);
        self.slot = slot;
        submitted?;
        self.index += 1;
        self.filled = 0;
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
            self.stream_syscalls += 1;
            // SAFETY: fallocate on a file descriptor we own; no memory is passed.
            let rc = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    0,
                    self.allocated as i64,
                    (goal - self.allocated) as i64,
                )
            };
            if rc == 0 {
                self.allocated = goal;
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOSPC) {
                break;
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
        if self.direct && (file_len % DIRECT_ALIGN != 0 || self.allocated > file_len) {
            self.stream_syscalls += 1;
            if let Err(e) = self.file.set_len(file_len) {
                return Err(self.fail(SpillError::io(&e, "cannot trim", &self.path)));
            }
        }
        if self.sync {
            let fd = self.file.as_raw_fd();
            if let Err(e) = self.pipe.with_backend(|b| b.fsync(fd)) {
                return Err(self.fail(SpillError::io(&e, "cannot sync", &self.path)));
            }
        }
        self.state = State::Finished;
        Ok(())
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

    /// Whether segments are sealed in parallel on a runtime (whose vCPUs also poll
    /// this stream's IO completions).
    pub fn is_parallel(&self) -> bool {
        self.pipe.runtime().is_some()
    }

    /// What this stream did so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            io: delta(self.pipe.counters(), self.base),
            stream_syscalls: self.stream_syscalls,
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
        self.pipe.close();
    }
}
