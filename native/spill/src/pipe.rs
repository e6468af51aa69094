//! Where a writer's sealed segments go: its backend, with up to `queue_depth`
//! writes in flight. The writer's own thread submits and, when every slot is busy,
//! waits in the backend (its spin, then the kernel wakes it).
//!
//! A stream on a runtime does not hand its completions to the vCPUs: its caller
//! is a blocking caller, and the kernel wakes a blocked thread exactly when a
//! completion arrives, whereas parked vCPUs would have to wake up periodically to
//! poll (on a 2-core machine those wake-ups took a quarter of a disk-bound stream's
//! throughput from the SQPOLL thread). The vCPUs help seal instead; tasks that await
//! IO on the runtime would use exitless-io's `IoDriver` (its `driver` feature), whose
//! completions the vCPUs poll.

use std::io;
use std::os::fd::RawFd;

use exitless_io::{Completion, Counters};

use crate::pool::PooledBackend;

/// A failed write: the error and the segment it belonged to.
pub(crate) type PipeError = (io::Error, u64);

pub(crate) struct Pipe {
    backend: PooledBackend,
    /// The segment each slot is writing, and the bytes its write must move.
    in_flight: Vec<Option<(u64, usize)>>,
    done: Vec<Completion>,
    /// Consecutive segments gathered in one slot, not yet written.
    staged: Option<Staged>,
    /// Whether consecutive segments share a write (see [`Pipe::coalesce_into`]).
    coalesce: bool,
}

/// One write being assembled from consecutive segments in a backend slot.
#[derive(Clone, Copy)]
struct Staged {
    slot: usize,
    fd: RawFd,
    /// File offset of the first byte.
    offset: u64,
    /// Bytes staged so far.
    len: usize,
    /// The first segment in it (errors name it).
    first: u64,
}

impl Pipe {
    pub(crate) fn new(mut backend: PooledBackend) -> Self {
        let depth = backend.get().depth();
        Self {
            backend,
            in_flight: vec![None; depth],
            done: Vec::with_capacity(depth),
            staged: None,
            coalesce: false,
        }
    }

    /// Bytes a slot holds: the largest single write.
    pub(crate) fn slot_len(&self) -> usize {
        self.backend.peek().buffer_len()
    }

    /// Starts writing `data` (segment `segment`) at `offset`, padded with zeros to
    /// `pad_to` bytes, waiting for free slots first if all are busy. When coalescing,
    /// a segment that follows the one staged before it joins it in the same slot,
    /// and the write starts once the next segment would not fit (or a padded, final
    /// segment ends it). A segment larger than a slot goes out as several writes of
    /// one slot each (slots are whole pages, so direct IO stays aligned). A failure
    /// of an earlier write surfaces here.
    pub(crate) fn submit(
        &mut self,
        fd: RawFd,
        segment: u64,
        offset: u64,
        data: &[u8],
        pad_to: usize,
    ) -> Result<(), PipeError> {
        let total = data.len().max(pad_to);
        let slot_len = self.slot_len();
        if let Some(st) = self.staged {
            if st.fd == fd && st.offset + st.len as u64 == offset && st.len + total <= slot_len {
                self.backend.get().stage(st.slot, st.len, data).map_err(|e| (e, segment))?;
                let len = st.len + data.len();
                self.staged = Some(Staged { len, ..st });
                return self.end_staged(pad_to.saturating_sub(data.len()), data.len());
            }
            self.flush(0)?;
        }
        if self.coalesce && total <= slot_len {
            let slot = self.free_slot()?;
            self.backend.get().stage(slot, 0, data).map_err(|e| (e, segment))?;
            self.staged = Some(Staged { slot, fd, offset, len: data.len(), first: segment });
            return self.end_staged(pad_to.saturating_sub(data.len()), data.len());
        }
        let mut at = 0;
        while at < total {
            let end = (at + slot_len).min(total);
            let bytes = &data[at.min(data.len())..end.min(data.len())];
            let slot = self.free_slot()?;
            self.backend
                .get()
                .write(slot, fd, offset + at as u64, bytes, end - at)
                .map_err(|e| (e, segment))?;
            self.in_flight[slot] = Some((segment, end - at));
            at = end;
        }
        Ok(())
    }

    /// Starts the staged write if `padding` ends it (a final, padded segment) or if
    /// another segment of `segment_len` bytes would not fit its slot.
    fn end_staged(&mut self, padding: usize, segment_len: usize) -> Result<(), PipeError> {
        let Some(st) = self.staged else { return Ok(()) };
        if padding > 0 || st.len + segment_len > self.slot_len() {
            self.flush(padding)?;
        }
        Ok(())
    }

    /// Starts the staged write (if any), with `padding` zeros after it.
    fn flush(&mut self, padding: usize) -> Result<(), PipeError> {
        let Some(st) = self.staged.take() else { return Ok(()) };
        let total = st.len + padding;
        self.backend
            .get()
            .write_staged(st.slot, st.fd, st.offset, st.len, total)
            .map_err(|e| (e, st.first))?;
        self.in_flight[st.slot] = Some((st.first, total));
        Ok(())
    }

    /// A slot with nothing in flight (and nothing staged), waiting if all are busy.
    fn free_slot(&mut self) -> Result<usize, PipeError> {
        loop {
            let staged = self.staged.map(|st| st.slot);
            if let Some(s) =
                (0..self.in_flight.len()).find(|&s| self.in_flight[s].is_none() && Some(s) != staged)
            {
                return Ok(s);
            }
            self.wait()?;
        }
    }

    /// Drains this pipe and moves it to `backend` (with IO-sized slots); the old one
    /// goes back to its pool (the file is a plain descriptor: any ring can use it). From
    /// then on, consecutive segments that fit one slot go out as one write: the unit
    /// of authentication is the segment, not the unit of IO.
    pub(crate) fn coalesce_into(&mut self, mut backend: PooledBackend) -> Result<(), PipeError> {
        self.drain()?;
        let depth = backend.get().depth();
        self.backend = backend;
        self.in_flight = vec![None; depth];
        self.coalesce = true;
        Ok(())
    }

    /// Starts what is staged and waits for every write in flight; the first failure
    /// is returned.
    pub(crate) fn drain(&mut self) -> Result<(), PipeError> {
        self.flush(0)?;
        while self.in_flight.iter().any(Option::is_some) {
            self.wait()?;
        }
        Ok(())
    }

    /// Where IO in flight belongs to the thread that submitted it (io_uring without
    /// SQPOLL: the kernel cancels it if that thread ends), waits until none is in
    /// flight; what is staged stays staged (no thread owns it yet). Called before a
    /// stream's public call returns.
    pub(crate) fn settle(&mut self) -> Result<(), PipeError> {
        if self.backend.peek().thread_bound() {
            while self.in_flight.iter().any(Option::is_some) {
                self.wait()?;
            }
        }
        Ok(())
    }

    /// Runs `f` on the backend (after [`drain`](Self::drain): nothing is staged).
    pub(crate) fn with_backend<R>(&mut self, f: impl FnOnce(&mut dyn exitless_io::Backend) -> R) -> R {
        f(self.backend.get())
    }

    /// The backend's counters.
    pub(crate) fn counters(&self) -> Counters {
        self.backend.peek().counters()
    }

    /// Drops what is staged (an unfinished stream stays incomplete) and drains
    /// (ignoring errors); the backend goes back to its pool when the pipe drops.
    /// Idempotent.
    pub(crate) fn close(&mut self) {
        self.staged = None;
        let _ = self.drain();
    }

    /// Collects completions (blocking for at least one); the first failure among
    /// them is returned, naming its segment (a rejected completion too, when it
    /// answered a write in flight).
    fn wait(&mut self) -> Result<(), PipeError> {
        let in_flight = &self.in_flight;
        self.backend.get().wait(&mut self.done).map_err(|e| {
            let slot = exitless_io::error::rejected_completion(&e).and_then(|r| r.why().in_flight_slot());
            let seg = slot
                .and_then(|s| in_flight.get(s as usize).copied().flatten())
                .map_or(u64::MAX, |(seg, _)| seg);
            (e, seg)
        })?;
        let mut first = None;
        for c in self.done.drain(..) {
            let (seg, len) = self.in_flight[c.slot].take().unwrap_or((u64::MAX, 0));
            let failed = match c.result {
                Err(e) => Some(e),
                // The backend contract: a write completes whole or fails. A backend
                // that reports less left a hole; say so rather than trust the file.
                Ok(n) if n != len => Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("the backend wrote {n} of {len} bytes"),
                )),
                Ok(_) => None,
            };
            if let Some(e) = failed {
                first.get_or_insert((e, seg));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exitless_io::{Backend, BackendKind, SyncBackend};

    /// A backend that breaks the contract: its writes claim one byte less than asked.
    struct ShortReporting(SyncBackend);

    impl Backend for ShortReporting {
        fn kind(&self) -> BackendKind {
            BackendKind::Sync
        }
        fn depth(&self) -> usize {
            self.0.depth()
        }
        fn buffer_len(&self) -> usize {
            self.0.buffer_len()
        }
        fn stage(&mut self, slot: usize, at: usize, data: &[u8]) -> io::Result<()> {
            self.0.stage(slot, at, data)
        }
        fn write_staged(
            &mut self,
            slot: usize,
            fd: RawFd,
            offset: u64,
            len: usize,
            pad_to: usize,
        ) -> io::Result<()> {
            self.0.write_staged(slot, fd, offset, len, pad_to)
        }
        fn read(&mut self, slot: usize, fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
            self.0.read(slot, fd, offset, len)
        }
        fn copy_out_at(&mut self, slot: usize, at: usize, out: &mut [u8]) {
            self.0.copy_out_at(slot, at, out);
        }
        fn wait(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
            let from = out.len();
            self.0.wait(out)?;
            for c in &mut out[from..] {
                if let Ok(n) = &mut c.result {
                    *n -= 1;
                }
            }
            Ok(())
        }
        fn in_flight(&self) -> usize {
            self.0.in_flight()
        }
        fn file_op(&mut self, op: exitless_io::FileOp<'_>) -> io::Result<exitless_io::FileOpOutput> {
            self.0.file_op(op)
        }
        fn fsync(&mut self, fd: RawFd) -> io::Result<()> {
            self.0.fsync(fd)
        }
        fn counters(&self) -> Counters {
            self.0.counters()
        }
    }

    #[test]
    fn a_write_completion_shorter_than_the_write_fails_the_stream() {
        let f = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let backend = ShortReporting(SyncBackend::new(2, 4096).unwrap());
        let mut pipe = Pipe::new(PooledBackend::unpooled(Box::new(backend)));
        pipe.submit(fd, 0, 0, &[1; 100], 0).unwrap();
        pipe.submit(fd, 1, 100, &[2; 100], 0).unwrap();
        let (e, segment) = pipe.drain().unwrap_err();
        assert_eq!((e.kind(), segment), (io::ErrorKind::WriteZero, 0));
        assert!(e.to_string().contains("wrote 99 of 100 bytes"), "{e}");
    }
}
