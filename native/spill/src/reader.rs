//! [`SpillReader`]: random-access reads of a sealed stream with read-ahead.
//!
//! Segments are read into backend slots (untrusted memory for io_uring), then
//! copied into the trusted segment buffer exactly once and opened there, so the
//! bytes that were authenticated are the bytes that are decrypted. The final
//! segment is checked at open: truncation is reported before any plaintext.

use std::fs::File;
use std::os::unix::fs::FileExt;

use exitless_io::{Completion, RawFd};
use exitless_seal::{DataKey, Decryptor, Geometry, Header, Layout, MAX_HEADER_LEN, TAG_LEN, V2_FIXED_LEN};

use crate::error::{Cause, Op, SpillError, SpillResult};
use crate::memory::DIRECT_ALIGN;
use crate::memory::{coalesces, slot_len, GrowBuf, COALESCE_AFTER, IO_SIZE};
use crate::options::SpillOptions;
use crate::pool::{checkout, PooledBackend};
use crate::stats::StreamStats;

/// A file opened through a backend: closed through it again (on an error while a
/// reader is set up) unless [`disarm`](Self::disarm) hands both to the reader.
struct Opened {
    /// `Some` until disarmed.
    backend: Option<PooledBackend>,
    fd: RawFd,
    base: exitless_io::Counters,
}

impl Opened {
    fn backend(&mut self) -> &mut PooledBackend {
        self.backend.as_mut().expect("present until disarmed")
    }

    /// Reads the file's head, up to a slot, into slot 0; returns how many bytes
    /// arrived and the file's length. A read that ends short reached the end of the
    /// file, so a small file costs no stat; with `trust_short` that is one IO and the
    /// kernel's word for it (`short` is set: [`SpillReader::open`] checks the word by
    /// what it implies), else a whole read that proves the end. One that fills the
    /// slot, or finds nothing, asks for the length and type (a device, a FIFO or an
    /// empty file is refused or reported from there). A directory fails the read
    /// (EISDIR).
    fn read_head(&mut self, path: &str, trust_short: bool, short: &mut bool) -> SpillResult<(usize, u64)> {
        let fd = self.fd;
        let b = self.backend().get();
        let len = b.buffer_len();
        let err = |e: std::io::Error| SpillError::io(e, Op::ReadHeader, path);
        if trust_short {
            b.read_some(0, fd, 0, len).map_err(err)?;
        } else {
            b.read(0, fd, 0, len).map_err(err)?;
        }
        let mut done = Vec::new();
        let got = loop {
            b.wait(&mut done).map_err(err)?;
            if let Some(c) = done.drain(..).find(|c| c.slot == 0) {
                break c.result.map_err(err)?;
            }
        };
        if got > 0 && got < len {
            *short = trust_short;
            return Ok((got, got as u64));
        }
        let file_len = crate::file::regular_len(b, fd, path)?;
        Ok((got.min(file_len.min(len as u64) as usize), file_len))
    }

    fn disarm(mut self) -> (PooledBackend, RawFd, exitless_io::Counters) {
        (self.backend.take().expect("present until disarmed"), self.fd, self.base)
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(b) = &mut self.backend {
            let mut done = Vec::new();
            while b.get().in_flight() > 0 && b.get().wait(&mut done).is_ok() {}
            let _ = crate::file::close(b.get(), self.fd);
        }
    }
}

/// What a backend slot holds: one *window* of the file, `per_window` consecutive
/// segments read with one IO (a long stream's windows are up to 1 MiB; a short
/// one's are single segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Pending(u64),
    Ready(u64, usize),
    Failed(u64, i32),
}

/// Reads one sealed stream.
pub struct SpillReader {
    path: String,
    /// The file; closed (through the backend) once `closed`.
    fd: RawFd,
    closed: bool,
    direct: bool,
    dec: Decryptor,
    layout: Layout,
    geometry: Geometry,
    backend: PooledBackend,
    base: exitless_io::Counters,
    /// What the backend that read the head did, if the stream moved on from it.
    earlier: exitless_io::Counters,
    slots: Vec<Slot>,
    /// Segments per window (1 for short streams, or segments of an IO or more).
    per_window: u64,
    done: Vec<Completion>,
    /// Trusted: the last opened segment (segment 0 keeps its header in front); grows
    /// to the largest segment actually read.
    cache: GrowBuf,
    cache_index: Option<u64>,
    cache_start: usize,
    cache_len: usize,
    last_loaded: Option<u64>,
    pos: u64,
    stream_syscalls: u64,
    segments: u64,
    plaintext_bytes: u64,
}

impl SpillReader {
    /// Opens `path`, parses its header, derives the stream key and checks the final
    /// segment. The file is opened, checked and read through the backend: a backend
    /// of the writers' usual shape reads the file's start (a small file whole, with
    /// that one IO), and the stream keeps it unless the header calls for another.
    pub fn open(path: &str, key: &DataKey, context: &[u8], options: &SpillOptions) -> SpillResult<Self> {
        let mut short = false;
        match Self::open_attempt(path, key, context, options, true, &mut short) {
            // The length came from a short read, which only the kernel vouches for:
            // read to the proven end of the file and try again before failing. (A
            // good file gets here only from a kernel that cut a read short; the
            // retry counts as one resubmitted transfer.)
            Err(SpillError::Integrity { .. } | SpillError::Format { .. }) if short => {
                let mut reader = Self::open_attempt(path, key, context, options, false, &mut short)?;
                reader.earlier.resubmits += 1;
                Ok(reader)
            }
            other => other,
        }
    }

    /// [`open`](Self::open); with `trust_short`, a short read of the head is taken
    /// for the end of the file, and `short` says whether the length came from one.
    fn open_attempt(
        path: &str,
        key: &DataKey,
        context: &[u8],
        options: &SpillOptions,
        trust_short: bool,
        short: &mut bool,
    ) -> SpillResult<Self> {
        let kind = options.backend.resolve()?;
        let usual = slot_len(options.params.segment_size as usize);
        let mut backend = checkout(kind, options.queue_depth, usual, &options.ocall_model, options.uring)?;
        let base = backend.get().counters();
        backend.inject(options, path)?;
        let fd = crate::file::open_for_reading(backend.get(), path)?;
        let mut opened = Opened { backend: Some(backend), fd, base };
        let (head, file_len) = opened.read_head(path, trust_short, short)?;
        let mut reader = Self::with_head(path, key, context, options, opened, file_len, head)?;
        let geometry = reader.geometry;
        reader.load(geometry.final_index()).map_err(|e| {
            if geometry.segments > 1 {
                e.maybe_truncated()
            } else {
                e
            }
        })?;
        reader.settle()?;
        Ok(reader)
    }

    /// The reader of an opened file whose first `head` bytes sit in slot 0 of
    /// `opened`'s backend (the file closes with `opened` on error).
    fn with_head(
        path: &str,
        key: &DataKey,
        context: &[u8],
        options: &SpillOptions,
        mut opened: Opened,
        file_len: u64,
        head: usize,
    ) -> SpillResult<Self> {
        let kind = opened.backend().peek().kind();
        let mut start = vec![0u8; head.min(MAX_HEADER_LEN)];
        opened.backend().get().copy_out(0, &mut start);
        start.truncate(Header::declared_len(&start).min(start.len()));
        let dec = Decryptor::new(key, &start, context).map_err(|e| SpillError::seal(e, path))?;
        let geometry = dec.geometry(file_len).map_err(|e| SpillError::seal(e, path))?;
        let layout = dec.layout();
        let direct = options.direct == Some(true);
        if direct {
            // The segment size is known only now: reopen with O_DIRECT.
            let seg = layout.segment_size();
            let fd = crate::file::open(opened.backend().get(), path, false, true, seg)?;
            let old = std::mem::replace(&mut opened.fd, fd);
            crate::file::close(opened.backend().get(), old)
                .map_err(|e| SpillError::io(e, Op::Close, path))?;
        }
        // The header is not authenticated yet: nothing is sized from its segment size
        // alone. A segment longer than the file is no longer than the file; one longer
        // than an IO is read in several; and a file that could make a reader hold
        // more than an IO's worth of trusted memory must have no holes first (below).
        let longest = (layout.segment_size() as u64).min(file_len) as usize;
        let extent =
            if direct { longest.div_ceil(DIRECT_ALIGN as usize) * DIRECT_ALIGN as usize } else { longest };
        let mut stream_syscalls = 0;
        if longest > IO_SIZE {
            stream_syscalls += 1;
            refuse_holes(opened.fd, file_len, path)?;
        }
        // A long stream reads windows of consecutive segments, one IO each (as its
        // writer wrote them); a short one, segment by segment.
        let seg = layout.segment_size() as usize;
        let coalesce = file_len >= COALESCE_AFTER && coalesces(seg, options.queue_depth);
        let (per_window, slot) =
            if coalesce { ((IO_SIZE / seg) as u64, IO_SIZE) } else { (1, slot_len(extent)) };
        // The backend that read the head serves the stream if its slots fit; its
        // slot 0 then already holds the first window (a small file: all of it).
        let keep = !coalesce && opened.backend().peek().buffer_len() >= slot;
        let mut earlier = exitless_io::Counters::default();
        if !keep {
            let mut next = checkout(kind, options.queue_depth, slot, &options.ocall_model, options.uring)?;
            if let Some(plan) = &options.faults {
                // The same plan: it counts this stream's operations across both backends.
                next.get().set_faults(Some(plan.clone()));
            }
            earlier = opened.backend().peek().counters().since(&opened.base);
            opened.base = next.get().counters();
            opened.backend = Some(next);
        }
        let depth = opened.backend().get().depth();
        let mut slots = vec![Slot::Free; depth];
        if keep && !direct {
            slots[0] = Slot::Ready(0, head);
        }
        let (backend, fd, base) = opened.disarm();
        Ok(Self {
            path: path.to_owned(),
            fd,
            closed: false,
            direct,
            dec,
            layout,
            geometry,
            backend,
            base,
            earlier,
            slots,
            per_window,
            done: Vec::with_capacity(depth),
            cache: GrowBuf::new(longest),
            cache_index: None,
            cache_start: 0,
            cache_len: 0,
            last_loaded: None,
            pos: 0,
            stream_syscalls,
            segments: 0,
            plaintext_bytes: 0,
        })
    }

    /// Bytes of the file that segment `index` occupies: (offset, needed length).
    /// Segment 0 is read together with the header in front of it.
    fn extent(&self, index: u64) -> (u64, usize) {
        let ct = if index == self.geometry.final_index() {
            self.geometry.final_len
        } else {
            self.layout.capacity(index) + TAG_LEN
        };
        if index == 0 {
            (0, self.layout.header_len() + ct)
        } else {
            (self.layout.offset(index), ct)
        }
    }

    /// The segments of window `w`: first and last index.
    fn window(&self, w: u64) -> (u64, u64) {
        let first = w * self.per_window;
        (first, (first + self.per_window - 1).min(self.geometry.final_index()))
    }

    /// Bytes of the file that window `w` occupies: (offset, length, length to read,
    /// rounded up for direct IO).
    fn window_extent(&self, w: u64) -> (u64, usize, usize) {
        let (first, last) = self.window(w);
        let (offset, _) = self.extent(first);
        let (last_offset, last_len) = self.extent(last);
        let len = (last_offset - offset) as usize + last_len;
        let read =
            if self.direct { len.div_ceil(DIRECT_ALIGN as usize) * DIRECT_ALIGN as usize } else { len };
        (offset, len, read)
    }

    fn submit(&mut self, slot: usize, w: u64) -> SpillResult {
        let (offset, _, len) = self.window_extent(w);
        let fd = self.fd;
        if let Err(e) = self.backend.get().read(slot, fd, offset, len) {
            let (first, _) = self.window(w);
            return Err(SpillError::io(e, Op::Read, &self.path).at_segment(first));
        }
        self.slots[slot] = Slot::Pending(w);
        Ok(())
    }

    fn wait_some(&mut self) -> SpillResult {
        let mut done = std::mem::take(&mut self.done);
        let r = self.backend.get().wait(&mut done);
        for c in done.drain(..) {
            if let Slot::Pending(index) = self.slots[c.slot] {
                self.slots[c.slot] = match c.result {
                    Ok(n) => Slot::Ready(index, n),
                    Err(e) => Slot::Failed(index, e.raw_os_error().unwrap_or(libc::EIO)),
                };
            }
        }
        self.done = done;
        r.map_err(|e| {
            // A rejected completion that answered a read in flight names its segment.
            let slot = exitless_io::error::rejected_completion(&e).and_then(|r| r.why().in_flight_slot());
            let window = match slot.and_then(|s| self.slots.get(s as usize)) {
                Some(Slot::Pending(w)) => Some(*w),
                _ => None,
            };
            let err = SpillError::io(e, Op::Read, &self.path);
            match window {
                Some(w) => err.at_segment(self.window(w).0),
                None => err,
            }
        })
    }

    /// A slot to read into: a free one, else one holding an unneeded window, else
    /// wait for a read to finish.
    fn claim_slot(&mut self, keep: u64) -> SpillResult<usize> {
        loop {
            if let Some(s) = self.slots.iter().position(|s| *s == Slot::Free) {
                return Ok(s);
            }
            let spare = self.slots.iter().position(|s| match *s {
                Slot::Ready(i, _) | Slot::Failed(i, _) => i != keep,
                _ => false,
            });
            if let Some(s) = spare {
                self.slots[s] = Slot::Free;
                return Ok(s);
            }
            self.wait_some()?;
        }
    }

    /// The slot holding (or reading) window `w`.
    fn find(&self, w: u64) -> Option<usize> {
        self.slots.iter().position(|s| match *s {
            Slot::Pending(i) | Slot::Ready(i, _) | Slot::Failed(i, _) => i == w,
            Slot::Free => false,
        })
    }

    /// Bytes to read for segment `index` on its own (its extent, rounded up for direct IO).
    fn read_len(&self, index: u64) -> usize {
        let (_, len) = self.extent(index);
        if self.direct {
            len.div_ceil(DIRECT_ALIGN as usize) * DIRECT_ALIGN as usize
        } else {
            len
        }
    }

    /// Makes segment `index` the authenticated plaintext in `cache`.
    fn load(&mut self, index: u64) -> SpillResult {
        if self.cache_index == Some(index) {
            return Ok(());
        }
        self.cache_index = None;
        let (_, needed) = self.extent(index);
        self.cache.ensure(needed);
        if self.per_window == 1 && self.read_len(index) > self.backend.peek().buffer_len() {
            self.load_in_pieces(index)?;
        } else {
            self.load_in_one(index)?;
        }
        let start = if index == 0 { self.layout.header_len() } else { 0 };
        let last = index == self.geometry.final_index();
        let n = self
            .dec
            .open_in_place(index, last, &mut self.cache[start..needed])
            .map_err(|e| SpillError::seal(e, &self.path))?;
        self.cache_index = Some(index);
        self.cache_start = start;
        self.cache_len = n;
        self.segments += 1;
        let sequential = self.last_loaded.map_or(index == 0, |l| index == l + 1);
        self.last_loaded = Some(index);
        if sequential {
            self.read_ahead(index)?;
        }
        Ok(())
    }

    /// Brings segment `index` into `cache`, unopened, out of the slot that reads
    /// its window (reading the window first if no slot has it).
    fn load_in_one(&mut self, index: u64) -> SpillResult {
        let w = index / self.per_window;
        let slot = match self.find(w) {
            Some(s) => s,
            None => {
                let s = self.claim_slot(w)?;
                self.submit(s, w)?;
                s
            }
        };
        while matches!(self.slots[slot], Slot::Pending(_)) {
            self.wait_some()?;
        }
        let (offset, needed) = self.extent(index);
        let at = (offset - self.window_extent(w).0) as usize;
        let (first, last) = self.window(w);
        // The window stays in its slot until its last segment is out (or its slot is
        // needed); the final window, read at open (no segment opened yet), stays for
        // a sequential reader when it holds segments before the final one.
        let opening = self.segments == 0;
        let done_with = index == last && !(opening && index != first);
        let state =
            if done_with { std::mem::replace(&mut self.slots[slot], Slot::Free) } else { self.slots[slot] };
        match state {
            Slot::Failed(_, errno) => {
                self.slots[slot] = Slot::Free;
                let e = std::io::Error::from_raw_os_error(errno);
                return Err(SpillError::io(e, Op::Read, &self.path).at_segment(index));
            }
            Slot::Ready(_, got) if got < at + needed => {
                self.slots[slot] = Slot::Free;
                return Err(self.shrank(index));
            }
            _ => {}
        }
        self.backend.get().copy_out_at(slot, at, &mut self.cache[..needed]);
        Ok(())
    }

    fn shrank(&self, index: u64) -> SpillError {
        SpillError::integrity(&self.path, Cause::Shrank).at_segment(index)
    }

    /// Brings segment `index`, larger than a slot, into `cache` through every slot
    /// in turn, one IO per slot. Read-ahead is given up first.
    fn load_in_pieces(&mut self, index: u64) -> SpillResult {
        while self.slots.iter().any(|s| matches!(s, Slot::Pending(_))) {
            self.wait_some()?;
        }
        self.slots.fill(Slot::Free);
        let (offset, needed) = self.extent(index);
        let total = self.read_len(index);
        let piece = self.backend.peek().buffer_len();
        let fd = self.fd;
        // Per slot: where in the segment its piece starts, while in flight.
        let mut pieces: Vec<Option<usize>> = vec![None; self.slots.len()];
        let (mut next, mut in_flight) = (0usize, 0usize);
        let mut failure: Option<SpillError> = None;
        let mut done = std::mem::take(&mut self.done);
        loop {
            while failure.is_none() && next < total {
                let Some(s) = pieces.iter().position(Option::is_none) else { break };
                let len = piece.min(total - next);
                if let Err(e) = self.backend.get().read(s, fd, offset + next as u64, len) {
                    failure = Some(SpillError::io(e, Op::Read, &self.path).at_segment(index));
                    break;
                }
                pieces[s] = Some(next);
                next += len;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            if let Err(e) = self.backend.get().wait(&mut done) {
                self.done = done;
                return Err(SpillError::io(e, Op::Read, &self.path));
            }
            for c in done.drain(..) {
                let Some(start) = pieces.get_mut(c.slot).and_then(Option::take) else { continue };
                in_flight -= 1;
                let want = piece.min(total - start);
                let useful = want.min(needed.saturating_sub(start));
                match c.result {
                    _ if failure.is_some() => {}
                    Err(e) => failure = Some(SpillError::io(e, Op::Read, &self.path).at_segment(index)),
                    Ok(got) if got < useful => failure = Some(self.shrank(index)),
                    Ok(_) => self.backend.get().copy_out(c.slot, &mut self.cache[start..start + useful]),
                }
            }
        }
        self.done = done;
        failure.map_or(Ok(()), Err)
    }

    /// Keeps the following windows in flight while slots are free. (Single-segment
    /// windows stop before the final segment, which was read at open.)
    fn read_ahead(&mut self, from: u64) -> SpillResult {
        let current = from / self.per_window;
        let last = self.geometry.final_index() / self.per_window;
        let end = if self.per_window == 1 { last } else { last + 1 };
        let mut next = current + 1;
        while next < end && (self.per_window > 1 || self.read_len(next) <= self.backend.peek().buffer_len()) {
            if self.find(next).is_none() {
                let Some(s) = self.slots.iter().position(|s| *s == Slot::Free) else { break };
                self.submit(s, next)?;
            }
            next += 1;
            if next > current + self.slots.len() as u64 {
                break;
            }
        }
        Ok(())
    }

    /// Reads up to `out.len()` bytes at the current position; 0 at end of stream.
    /// On error the position is unchanged and `out` holds nothing from this call.
    pub fn read(&mut self, out: &mut [u8]) -> SpillResult<usize> {
        let start = self.pos;
        let mut done = 0;
        while done < out.len() && self.pos < self.geometry.plaintext_len {
            let (index, offset) = self.layout.locate(self.pos);
            if let Err(e) = self.load(index) {
                out[..done].fill(0);
                self.pos = start;
                return Err(e);
            }
            let n = (self.cache_len - offset).min(out.len() - done);
            let from = self.cache_start + offset;
            out[done..done + n].copy_from_slice(&self.cache[from..from + n]);
            done += n;
            self.pos += n as u64;
        }
        self.plaintext_bytes += done as u64;
        self.settle()?;
        Ok(done)
    }

    /// Where IO in flight belongs to the thread that submitted it (io_uring without
    /// SQPOLL), waits for the read-ahead in flight (keeping what it read) before a
    /// call returns: the kernel would cancel it if this thread ended.
    fn settle(&mut self) -> SpillResult {
        if self.backend.peek().thread_bound() {
            while self.slots.iter().any(|s| matches!(s, Slot::Pending(_))) {
                self.wait_some()?;
            }
        }
        Ok(())
    }

    /// Moves the position like lseek: `whence` 0 = start, 1 = current, 2 = end.
    pub fn seek(&mut self, offset: i64, whence: i32) -> SpillResult<u64> {
        let base = match whence {
            0 => 0i128,
            1 => self.pos as i128,
            2 => self.geometry.plaintext_len as i128,
            _ => {
                return Err(SpillError::invalid(
                    Some(&self.path),
                    format!("invalid whence {whence} (use 0, 1 or 2)"),
                ))
            }
        };
        let target = base + offset as i128;
        if !(0..=i64::MAX as i128).contains(&target) {
            return Err(SpillError::invalid(
                Some(&self.path),
                format!("seek position {target} out of range"),
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The plaintext length (the final segment is already authenticated).
    pub fn plaintext_len(&self) -> u64 {
        self.geometry.plaintext_len
    }

    /// Whether the file is read with O_DIRECT.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        self.dec.header()
    }

    /// The backend this stream uses.
    pub fn backend_kind(&self) -> exitless_io::BackendKind {
        self.backend.peek().kind()
    }

    /// What this stream did so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            io: {
                let mut io = self.earlier;
                io.add(&self.backend.peek().counters().since(&self.base));
                io
            },
            stream_syscalls: self.stream_syscalls,
            segments: self.segments,
            plaintext_bytes: self.plaintext_bytes,
            direct: self.direct,
        }
    }
}

impl SpillReader {
    /// Closes the file (through the backend, counted in [`stats`](Self::stats))
    /// after read-ahead in flight lands. Idempotent; dropping the reader does it too.
    pub fn close(&mut self) {
        // Read-ahead still in flight must land before the backend is reused.
        while self.backend.get().in_flight() > 0 {
            let mut done = Vec::new();
            if self.backend.get().wait(&mut done).is_err() {
                break;
            }
        }
        if !self.closed {
            self.closed = true;
            let _ = crate::file::close(self.backend.get(), self.fd);
        }
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a sealed file's header and length say, read without a key (nothing is
/// authenticated).
pub struct Inspection {
    /// The parsed header (its [`Header::envelope`] is the key envelope, version 2).
    pub header: Header,
    /// The key envelope of a version-2 file (the wrapped data key); `None` for version 1.
    pub envelope: Option<Vec<u8>>,
    /// File length in bytes.
    pub file_len: u64,
    /// Where the segments are, as the length implies.
    pub geometry: Geometry,
}

/// Header facts of `path` without a key: the same header read and geometry a
/// reader starts with, stopping before key derivation.
pub fn inspect(path: &str) -> SpillResult<Inspection> {
    let file = File::open(path).map_err(|e| SpillError::io(e, Op::Open, path))?;
    let file_len = file.metadata().map_err(|e| SpillError::io(e, Op::Stat, path))?.len();
    let (start, _) = read_header(&file, path)?;
    let header = Header::parse(&start).map_err(|e| SpillError::seal(e, path))?;
    let layout = Layout::new(header.segment_size(), header.len()).map_err(|e| SpillError::seal(e, path))?;
    let geometry = layout.for_file(file_len).map_err(|e| SpillError::seal(e, path))?;
    let envelope = header.envelope().map(<[u8]>::to_vec);
    Ok(Inspection { header, envelope, file_len, geometry })
}

/// The start of the file that holds its header, unparsed: first the fixed 72 bytes
/// (or the whole file, if shorter), then, for a version-2 header, up to the length it
/// declares, capped at [`MAX_HEADER_LEN`]. Returns the bytes and the preads made.
fn read_header(file: &File, path: &str) -> SpillResult<(Vec<u8>, u64)> {
    let err = |e: std::io::Error| SpillError::io(e, Op::ReadHeader, path);
    let mut start = vec![0u8; MAX_HEADER_LEN];
    let got = read_at_most(file, &mut start[..V2_FIXED_LEN], 0).map_err(err)?;
    let mut reads = 1;
    let mut len = got;
    let want = Header::declared_len(&start[..got]).min(MAX_HEADER_LEN);
    if got == V2_FIXED_LEN && want > got {
        len += read_at_most(file, &mut start[got..want], got as u64).map_err(err)?;
        reads += 1;
    }
    start.truncate(len);
    Ok((start, reads))
}

/// Refuses a file with a hole (a range that was never written) in it: a sealed
/// stream is written from its first byte to its last, and its ciphertext never
/// reads as a page of zeros. A host that forged a large segment size into a small
/// file and extended it sparsely is turned away here, in one `lseek`, before a
/// segment of it is read. File systems without hole reporting report none.
fn refuse_holes(fd: RawFd, file_len: u64, path: &str) -> SpillResult {
    // SAFETY: lseek takes no pointers; SEEK_HOLE leaves the offset at the first hole.
    let hole = unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) };
    if hole >= 0 && (hole as u64) < file_len {
        return Err(SpillError::integrity(path, Cause::Hole { at: hole as u64, file_len }));
    }
    Ok(())
}

/// `pread` from `offset` until `buf` is full or end of file; retries EINTR.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
