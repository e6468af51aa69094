//! [`IoDriver`]: async submit/await over a backend's slot model, for a runtime
//! whose worker threads (vCPUs) poll completions themselves.
//!
//! The driver knows no runtime: tasks await [`IoDriver::write`] (which takes a free
//! slot, submits, and resolves when the completion arrives) and some thread calls
//! [`IoDriver::poll`] — in exitless-rt, every vCPU in its scheduling loop — to
//! collect completions without blocking and wake the tasks waiting for them.

use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use crate::backend::{Backend, Completion};

enum Slot {
    Free,
    /// Submitted; the waker of the task awaiting it, if it has polled.
    InFlight(Option<Waker>),
    Done(io::Result<usize>),
}

struct Inner {
    backend: Box<dyn Backend>,
    slots: Vec<Slot>,
    /// Tasks waiting for a free slot.
    slot_waiters: Vec<Waker>,
    scratch: Vec<Completion>,
    /// A backend error outside any completion: every later operation fails with it.
    broken: Option<(io::ErrorKind, String)>,
}

/// A backend shared by tasks, with completions delivered by [`IoDriver::poll`].
pub struct IoDriver {
    inner: Mutex<Inner>,
}

impl IoDriver {
    /// Wraps `backend`.
    pub fn new(backend: Box<dyn Backend>) -> Arc<Self> {
        let depth = backend.depth();
        Arc::new(Self {
            inner: Mutex::new(Inner {
                backend,
                slots: (0..depth).map(|_| Slot::Free).collect(),
                slot_waiters: Vec::new(),
                scratch: Vec::with_capacity(depth),
                broken: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Collects completions without blocking and wakes their tasks; returns how many.
    pub fn poll(&self) -> usize {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.broken.is_some() {
            return 0;
        }
        let mut done = std::mem::take(&mut inner.scratch);
        if let Err(e) = inner.backend.try_wait(&mut done) {
            inner.broken = Some((e.kind(), e.to_string()));
            // Fail every waiter: their operations will never complete.
            for slot in inner.slots.iter_mut() {
                if let Slot::InFlight(w) = slot {
                    if let Some(w) = w.take() {
                        w.wake();
                    }
                }
            }
        }
        let n = done.len();
        for c in done.drain(..) {
            if let Slot::InFlight(Some(w)) = std::mem::replace(&mut inner.slots[c.slot], Slot::Done(c.result))
            {
                w.wake();
            }
        }
        inner.scratch = done;
        n
    }

    /// Copies `data` into a free slot and writes it at `offset` of `fd` (zero-padded
    /// to `pad_to`); resolves with the bytes written once the completion arrives.
    pub async fn write(&self, fd: RawFd, offset: u64, data: &[u8], pad_to: usize) -> io::Result<usize> {
        let slot = self.acquire().await?;
        let submitted = {
            let mut inner = self.lock();
            let r = inner.backend.write(slot, fd, offset, data, pad_to);
            inner.slots[slot] = if r.is_ok() { Slot::InFlight(None) } else { Slot::Free };
            r
        };
        if let Err(e) = submitted {
            self.release_and_wake();
            return Err(e);
        }
        self.complete(slot, |_| {}).await
    }

    /// Starts a write if a slot is free, without waiting: `Ok(Some(slot))` to await
    /// with [`IoDriver::finish`], `Ok(None)` when every slot is busy.
    pub fn try_start_write(
        &self,
        fd: RawFd,
        offset: u64,
        data: &[u8],
        pad_to: usize,
    ) -> io::Result<Option<usize>> {
        let mut inner = self.lock();
        if let Some((kind, msg)) = &inner.broken {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        let Some(slot) = inner.slots.iter().position(|s| matches!(s, Slot::Free)) else { return Ok(None) };
        inner.backend.write(slot, fd, offset, data, pad_to)?;
        inner.slots[slot] = Slot::InFlight(None);
        Ok(Some(slot))
    }

    /// The outcome of the operation started on `slot`, if it has completed (the slot
    /// is then free); `None` while it is in flight.
    pub fn try_finish(&self, slot: usize) -> Option<io::Result<usize>> {
        let mut inner = self.lock();
        if !matches!(inner.slots[slot], Slot::Done(_)) {
            return None;
        }
        let Slot::Done(r) = std::mem::replace(&mut inner.slots[slot], Slot::Free) else { unreachable!() };
        drop(inner);
        self.wake_slot_waiter();
        Some(r)
    }

    /// Resolves when the operation started on `slot` completes.
    pub async fn finish(&self, slot: usize) -> io::Result<usize> {
        self.complete(slot, |_| {}).await
    }

    /// Reads `out.len()` bytes at `offset` of `fd` through a slot, copying them out
    /// once on completion; resolves with the bytes read.
    pub async fn read(&self, fd: RawFd, offset: u64, out: &mut [u8]) -> io::Result<usize> {
        let slot = self.acquire().await?;
        let submitted = {
            let mut inner = self.lock();
            let r = inner.backend.read(slot, fd, offset, out.len());
            inner.slots[slot] = if r.is_ok() { Slot::InFlight(None) } else { Slot::Free };
            r
        };
        if let Err(e) = submitted {
            self.release_and_wake();
            return Err(e);
        }
        self.complete(slot, |inner: &mut Inner| {
            let len = out.len();
            inner.backend.copy_out(slot, &mut out[..len]);
        })
        .await
    }

    /// Waits for a free slot and reserves it.
    async fn acquire(&self) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut inner = self.lock();
            if let Some((kind, msg)) = &inner.broken {
                return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
            }
            match inner.slots.iter().position(|s| matches!(s, Slot::Free)) {
                Some(slot) => {
                    inner.slots[slot] = Slot::InFlight(None);
                    Poll::Ready(Ok(slot))
                }
                None => {
                    inner.slot_waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits for `slot`'s completion; on success runs `take` (e.g. copy the bytes
    /// out) before the slot is freed.
    async fn complete(&self, slot: usize, take: impl FnOnce(&mut Inner)) -> io::Result<usize> {
        let mut take = Some(take);
        let result = poll_fn(|cx| {
            let mut guard = self.lock();
            let inner = &mut *guard;
            match &mut inner.slots[slot] {
                Slot::Done(_) => {
                    let Slot::Done(r) = std::mem::replace(&mut inner.slots[slot], Slot::Free) else {
                        unreachable!()
                    };
                    if r.is_ok() {
                        if let Some(take) = take.take() {
                            take(inner);
                        }
                    }
                    Poll::Ready(r)
                }
                Slot::InFlight(w) => {
                    if let Some((kind, msg)) = &inner.broken {
                        let e = io::Error::new(*kind, msg.clone());
                        return Poll::Ready(Err(e));
                    }
                    *w = Some(cx.waker().clone());
                    Poll::Pending
                }
                Slot::Free => Poll::Ready(Err(io::Error::other("slot freed while awaited"))),
            }
        })
        .await;
        self.wake_slot_waiter();
        result
    }

    fn release_and_wake(&self) {
        self.wake_slot_waiter();
    }

    fn wake_slot_waiter(&self) {
        let waiter = self.lock().slot_waiters.pop();
        if let Some(w) = waiter {
            w.wake();
        }
    }

    /// Runs `f` on the backend (e.g. for fsync or counters), under the driver's lock.
    pub fn with_backend<R>(&self, f: impl FnOnce(&mut dyn Backend) -> R) -> R {
        f(self.lock().backend.as_mut())
    }

    /// Operations in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().slots.iter().filter(|s| !matches!(s, Slot::Free)).count()
    }

    /// Takes the backend back (for reuse), if no operation is in flight.
    pub fn into_backend(self: Arc<Self>) -> Result<Box<dyn Backend>, Arc<Self>> {
        let this = Arc::try_unwrap(self)?;
        Ok(this.inner.into_inner().unwrap_or_else(|p| p.into_inner()).backend)
    }
}
