//! [`SpillWriter`]: seal a segment in trusted memory, hand the ciphertext to the
//! backend, keep filling the next one while up to `queue_depth` are in flight.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use exitless_io::{BackendKind, Completion};
use exitless_seal::{DataKey, Encryptor, Layout, HEADER_LEN};
use zeroize::Zeroizing;

use crate::error::{SpillError, SpillResult};
use crate::options::{checkout, PooledBackend, SpillOptions, DIRECT_ALIGN};
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
    enc: Encryptor,
    layout: Layout,
    backend: PooledBackend,
    /// Backend counters when this stream took the backend.
    base: exitless_io::Counters,
    /// The segment being filled (for segment 0: the header, then plaintext). Trusted.
    slot: Zeroizing<Vec<u8>>,
    filled: usize,
    index: u64,
    written: u64,
    /// Segment index each backend slot is writing, if any.
    in_flight: Vec<Option<u64>>,
    done: Vec<Completion>,
    stream_syscalls: u64,
    /// Bytes reserved with fallocate (direct IO only; `u64::MAX` when unsupported).
    allocated: u64,
    sync: bool,
    state: State,
}

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
        let depth = backend.get().depth();
        Ok(Self {
            path: path.to_owned(),
            file,
            direct,
            enc,
            layout,
            backend,
            base,
            slot,
            filled: 0,
            index: 0,
            written: 0,
            in_flight: vec![None; depth],
            done: Vec::with_capacity(depth),
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

    /// Handles finished writes; an error fails the stream, naming the segment.
    fn absorb(&mut self) -> SpillResult {
        let done = std::mem::take(&mut self.done);
        let mut first_err = None;
        for c in &done {
            let segment = self.in_flight[c.slot].take();
            if let (Err(e), None) = (&c.result, &first_err) {
                let what = format!("cannot write segment {} of", segment.unwrap_or(u64::MAX));
                first_err = Some(SpillError::io(e, &what, &self.path));
            }
        }
        self.done = done;
        self.done.clear();
        match first_err {
            Some(e) => Err(self.fail(e)),
            None => Ok(()),
        }
    }

    fn wait_some(&mut self) -> SpillResult {
        let mut done = std::mem::take(&mut self.done);
        let r = self.backend.get().wait(&mut done);
        self.done = done;
        if let Err(e) = r {
            return Err(self.fail(SpillError::io(&e, "IO backend failed while writing", &self.path)));
        }
        self.absorb()
    }

    fn free_slot(&mut self) -> SpillResult<usize> {
        loop {
            if let Some(s) = self.in_flight.iter().position(Option::is_none) {
                return Ok(s);
            }
            self.wait_some()?;
        }
    }

    fn seal_and_submit(&mut self, last: bool) -> SpillResult {
        let base = self.base_offset();
        let sealed = match self.enc.seal_in_place(self.index, last, &mut self.slot[base..], self.filled) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(SpillError::seal(&e, &self.path))),
        };
        let slot = self.free_slot()?;
        let len = base + sealed;
        let pad_to = if self.direct {
            (len as u64).div_ceil(DIRECT_ALIGN) as usize * DIRECT_ALIGN as usize
        } else {
            len
        };
        let offset = if self.index == 0 { 0 } else { self.layout.offset(self.index) };
        let fd = self.file.as_raw_fd();
        if self.direct && offset + pad_to as u64 > self.allocated {
            self.preallocate(offset + pad_to as u64)?;
        }
        if let Err(e) = self.backend.get().write(slot, fd, offset, &self.slot[..len], pad_to) {
            let what = format!("cannot write segment {} of", self.index);
            return Err(self.fail(SpillError::io(&e, &what, &self.path)));
        }
        self.in_flight[slot] = Some(self.index);
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
        while self.in_flight.iter().any(Option::is_some) {
            self.wait_some()?;
        }
        let file_len = self.layout.sealed_len(self.written).expect("checked while writing");
        if self.direct && (file_len % DIRECT_ALIGN != 0 || self.allocated > file_len) {
            self.stream_syscalls += 1;
            if let Err(e) = self.file.set_len(file_len) {
                return Err(self.fail(SpillError::io(&e, "cannot trim", &self.path)));
            }
        }
        if self.sync {
            let fd = self.file.as_raw_fd();
            if let Err(e) = self.backend.get().fsync(fd) {
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
        self.backend.peek().kind()
    }

    /// What this stream did so far.
    pub fn stats(&self) -> StreamStats {
        let segments = self.index;
        StreamStats {
            io: delta(self.backend_counters(), self.base),
            stream_syscalls: self.stream_syscalls,
            segments,
            plaintext_bytes: self.written,
            direct: self.direct,
        }
    }

    fn backend_counters(&self) -> exitless_io::Counters {
        self.backend.peek().counters()
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        // An unfinished writer leaves an incomplete file; its in-flight writes still
        // complete before the backend is reused.
        while self.in_flight.iter().any(Option::is_some) && self.backend.get().in_flight() > 0 {
            let mut done = Vec::new();
            if self.backend.get().wait(&mut done).is_err() {
                break;
            }
            for c in done {
                self.in_flight[c.slot] = None;
            }
        }
        self.backend.get().detach();
    }
}
