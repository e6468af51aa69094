//! Where a writer's sealed segments go: its backend, with up to `queue_depth`
//! writes in flight. The writer's own thread submits and, when every slot is busy,
//! waits in the backend (its spin, then the kernel wakes it).
//!
//! A stream on a runtime does not hand its completions to the vCPUs: its caller
//! is a blocking caller, and the kernel wakes a blocked thread exactly when a
//! completion arrives, whereas parked vCPUs would have to wake up periodically to
//! poll (on a 2-core machine those wake-ups took a quarter of a disk-bound stream's
//! throughput from the SQPOLL thread). The vCPUs help seal instead; tasks that await
//! IO on the runtime use [`exitless_io::IoDriver`], whose completions the vCPUs poll.

use std::io;
use std::os::fd::RawFd;

use exitless_io::{Completion, Counters};

use crate::options::PooledBackend;

/// A failed write: the error and the segment it belonged to.
pub(crate) type PipeError = (io::Error, u64);

pub(crate) struct Pipe {
    backend: PooledBackend,
    /// The segment each slot is writing.
    in_flight: Vec<Option<u64>>,
    done: Vec<Completion>,
}

impl Pipe {
    pub(crate) fn new(mut backend: PooledBackend) -> Self {
        let depth = backend.get().depth();
        Self { backend, in_flight: vec![None; depth], done: Vec::with_capacity(depth) }
    }

    /// Starts writing `data` (segment `segment`) at `offset`, waiting for a free slot
    /// first if all are busy. A failure of an earlier write surfaces here.
    pub(crate) fn submit(
        &mut self,
        fd: RawFd,
        segment: u64,
        offset: u64,
        data: &[u8],
        pad_to: usize,
    ) -> Result<(), PipeError> {
        let slot = loop {
            if let Some(s) = self.in_flight.iter().position(Option::is_none) {
                break s;
            }
            self.wait()?;
        };
        self.backend.get().write(slot, fd, offset, data, pad_to).map_err(|e| (e, segment))?;
        self.in_flight[slot] = Some(segment);
        Ok(())
    }

    /// Waits for every write in flight; the first failure is returned.
    pub(crate) fn drain(&mut self) -> Result<(), PipeError> {
        while self.in_flight.iter().any(Option::is_some) {
            self.wait()?;
        }
        Ok(())
    }

    /// Runs `f` on the backend.
    pub(crate) fn with_backend<R>(&mut self, f: impl FnOnce(&mut dyn exitless_io::Backend) -> R) -> R {
        f(self.backend.get())
    }

    /// The backend's counters.
    pub(crate) fn counters(&self) -> Counters {
        self.backend.peek().counters()
    }

    /// Drains (ignoring errors) and detaches the file; the backend goes back to its
    /// pool when the pipe drops. Idempotent.
    pub(crate) fn close(&mut self) {
        let _ = self.drain();
        self.backend.get().detach();
    }

    /// Collects completions (blocking for at least one); the first failure among
    /// them is returned, naming its segment.
    fn wait(&mut self) -> Result<(), PipeError> {
        self.backend.get().wait(&mut self.done).map_err(|e| (e, u64::MAX))?;
        let mut first = None;
        for c in self.done.drain(..) {
            let seg = self.in_flight[c.slot].take().unwrap_or(u64::MAX);
            if let Err(e) = c.result {
                first.get_or_insert((e, seg));
            }
        }
        first.map_or(Ok(()), Err)
    }
}
