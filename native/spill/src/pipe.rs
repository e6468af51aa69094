//! Where a writer's sealed segments go: straight to its backend (the caller's
//! thread waits for completions), or through an [`IoDriver`] whose completions the
//! runtime's vCPUs poll, while the caller seals the next segments in parallel.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use exitless_io::{Completion, Counters, IoDriver};
use exitless_rt::{PollerId, Runtime};

use crate::options::PooledBackend;

/// The vCPUs' side of a driven stream: poll its backend's completions.
struct DriverPoller(Arc<IoDriver>);

impl exitless_rt::Poller for DriverPoller {
    fn poll(&self) -> usize {
        self.0.poll()
    }
}

/// A failed write: the error and the segment it belonged to.
pub(crate) type PipeError = (io::Error, u64);

pub(crate) enum Pipe {
    /// The caller's thread submits and waits.
    Direct { backend: PooledBackend, in_flight: Vec<Option<u64>>, done: Vec<Completion> },
    /// Completions are polled by the runtime's vCPUs; `backend` is empty while the
    /// driver owns the backend.
    Driven {
        backend: PooledBackend,
        driver: Arc<IoDriver>,
        rt: Runtime,
        poller: PollerId,
        in_flight: VecDeque<(usize, u64)>,
    },
}

impl Pipe {
    pub(crate) fn direct(mut backend: PooledBackend) -> Self {
        let depth = backend.get().depth();
        Self::Direct { backend, in_flight: vec![None; depth], done: Vec::with_capacity(depth) }
    }

    pub(crate) fn driven(mut backend: PooledBackend, rt: Runtime) -> Self {
        let driver = IoDriver::new(backend.take());
        let poller = rt.add_poller(Arc::new(DriverPoller(driver.clone())));
        Self::Driven { backend, driver, rt, poller, in_flight: VecDeque::new() }
    }

    /// The runtime that polls this pipe's completions, if any.
    pub(crate) fn runtime(&self) -> Option<&Runtime> {
        match self {
            Self::Direct { .. } => None,
            Self::Driven { rt, .. } => Some(rt),
        }
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
        match self {
            Self::Direct { backend, in_flight, done } => {
                let slot = loop {
                    if let Some(s) = in_flight.iter().position(Option::is_none) {
                        break s;
                    }
                    wait_direct(backend, in_flight, done)?;
                };
                backend.get().write(slot, fd, offset, data, pad_to).map_err(|e| (e, segment))?;
                in_flight[slot] = Some(segment);
                Ok(())
            }
            Self::Driven { driver, rt, in_flight, .. } => loop {
                match driver.try_start_write(fd, offset, data, pad_to).map_err(|e| (e, segment))? {
                    Some(slot) => {
                        in_flight.push_back((slot, segment));
                        return Ok(());
                    }
                    None => {
                        // Collect what has completed ourselves before waiting for a vCPU
                        // to do it: a park/unpark round trip costs two exits.
                        driver.poll();
                        let mut reaped = false;
                        let mut i = 0;
                        while i < in_flight.len() {
                            let (slot, seg) = in_flight[i];
                            match driver.try_finish(slot) {
                                Some(r) => {
                                    in_flight.remove(i);
                                    r.map_err(|e| (e, seg))?;
                                    reaped = true;
                                }
                                None => i += 1,
                            }
                        }
                        if !reaped {
                            let (slot, seg) =
                                in_flight.pop_front().expect("all slots busy means some are ours");
                            rt.block_on(driver.finish(slot)).map_err(|e| (e, seg))?;
                        }
                    }
                }
            },
        }
    }

    /// Waits for every write in flight; the first failure is returned.
    pub(crate) fn drain(&mut self) -> Result<(), PipeError> {
        match self {
            Self::Direct { backend, in_flight, done } => {
                while in_flight.iter().any(Option::is_some) {
                    wait_direct(backend, in_flight, done)?;
                }
                Ok(())
            }
            Self::Driven { driver, rt, in_flight, .. } => {
                let mut first = None;
                driver.poll();
                while let Some((slot, seg)) = in_flight.pop_front() {
                    if let Err(e) = rt.block_on(driver.finish(slot)) {
                        first.get_or_insert((e, seg));
                    }
                }
                first.map_or(Ok(()), Err)
            }
        }
    }

    /// Runs `f` on the backend, wherever it currently is.
    pub(crate) fn with_backend<R>(&mut self, f: impl FnOnce(&mut dyn exitless_io::Backend) -> R) -> R {
        match self {
            Self::Direct { backend, .. } => f(backend.get()),
            Self::Driven { driver, .. } => driver.with_backend(f),
        }
    }

    /// The backend's counters.
    pub(crate) fn counters(&self) -> Counters {
        match self {
            Self::Direct { backend, .. } => backend.peek().counters(),
            Self::Driven { driver, .. } => driver.with_backend(|b| b.counters()),
        }
    }

    /// Drains (ignoring errors), detaches the file and hands the backend back to its
    /// pool slot. Idempotent.
    pub(crate) fn close(&mut self) {
        let _ = self.drain();
        if let Self::Driven { backend, driver, rt, poller, .. } = self {
            rt.remove_poller(*poller);
            let driver = std::mem::replace(
                driver,
                IoDriver::new(Box::new(exitless_io::NullBackend::new(1, 1).expect("a 1-slot null backend"))),
            );
            match driver.into_backend() {
                Ok(b) => backend.put(b),
                Err(_) => backend.forget(), // still referenced: do not pool it
            }
        }
        if let Self::Direct { backend, .. } = self {
            backend.get().detach();
        } else if let Self::Driven { backend, .. } = self {
            if let Some(b) = backend.get_opt() {
                b.detach();
            }
        }
    }
}

fn wait_direct(
    backend: &mut PooledBackend,
    in_flight: &mut [Option<u64>],
    done: &mut Vec<Completion>,
) -> Result<(), PipeError> {
    backend.get().wait(done).map_err(|e| (e, u64::MAX))?;
    let mut first = None;
    for c in done.drain(..) {
        let seg = in_flight[c.slot].take().unwrap_or(u64::MAX);
        if let Err(e) = c.result {
            first.get_or_insert((e, seg));
        }
    }
    first.map_or(Ok(()), Err)
}
