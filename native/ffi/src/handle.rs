//! What every opaque handle is underneath: the stream behind a lock, the process
//! that opened it, and a count of the calls inside it, so that no call ever runs
//! on freed memory and no process but the opener ever touches the stream.
//!
//! - **Close and free are safe against calls in flight.** Every call enters the
//!   handle (counting itself in) before it touches anything, and leaves on return.
//!   `close` marks the handle closed (calls that enter later get
//!   `EXITLESS_ERR_CLOSED`), waits for the call holding the stream's lock, and drops
//!   the stream. `free` closes and gives up the caller's reference; the memory goes
//!   when the last call in flight leaves. What no handle can protect against is a
//!   call that *starts* after `free` returned: the pointer is gone by then. Callers
//!   whose threads may race a close use `close` and free once every thread is done
//!   (the Python binding frees when its object is garbage-collected).
//! - **A handle belongs to the process that opened it.** A forked child shares its
//!   parent's key, nonce prefix and segment counter, and (for io_uring) its rings and
//!   registered buffers: writing from both would seal two segments under one nonce.
//!   Every call from another process fails with `EXITLESS_ERR_WRONG_PROCESS` and
//!   touches nothing; `free` there releases only the child's copy of the handle and
//!   leaves the stream (the parent's) alone. The process id is cached and refreshed
//!   in the child by a `pthread_atfork` handler, so the check costs a load, not a
//!   `getpid`.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Mutex, Once};

use crate::args::lock;
use crate::options::ExitlessStats;
use crate::status::{FfiError, FfiResult, EXITLESS_ERR_CLOSED, EXITLESS_ERR_WRONG_PROCESS};

/// `state` bits: closed (no new calls), freed (the caller let go), and calls in
/// flight counted in units of [`CALL`].
const CLOSED: usize = 1;
const FREED: usize = 2;
const CALL: usize = 4;

/// A stream as the C caller holds it.
pub struct Handle<T> {
    /// The process that opened it.
    owner: u32,
    state: AtomicUsize,
    /// `None` once closed.
    inner: Mutex<Option<T>>,
    /// What the stream did, taken as it closed: readable after close.
    final_stats: Mutex<Option<ExitlessStats>>,
    /// Takes a stream's counters; with `true`, closes its file first (through its
    /// backend, so the close is counted) and takes them after.
    stats_of: fn(&mut T, bool) -> ExitlessStats,
    /// Open streams of this kind in the process (`exitless_resources`).
    live: &'static AtomicU64,
    /// Names the handle in errors ("writer", "reader").
    what: &'static str,
}

/// A call inside a handle; leaving (drop) may free the handle if it was the last.
pub(crate) struct Call<'a, T> {
    handle: &'a Handle<T>,
    ptr: *const Handle<T>,
}

impl<T> Handle<T> {
    /// A new open handle for `inner`, owned by this process and counted in `live`
    /// until it closes; `stats_of` takes its counters when it closes.
    pub(crate) fn boxed(
        inner: T,
        what: &'static str,
        stats_of: fn(&mut T, bool) -> ExitlessStats,
        live: &'static AtomicU64,
    ) -> *mut Self {
        live.fetch_add(1, Relaxed);
        Box::into_raw(Box::new(Self {
            owner: current_pid(),
            state: AtomicUsize::new(0),
            inner: Mutex::new(Some(inner)),
            final_stats: Mutex::new(None),
            stats_of,
            live,
            what,
        }))
    }

    fn wrong_process(&self) -> FfiError {
        FfiError::new(
            EXITLESS_ERR_WRONG_PROCESS,
            format!(
                "this {} belongs to process {}, not to this one ({}): a forked child cannot use its parent's \
                 streams (it would reuse their key and nonces); nothing was done",
                self.what,
                self.owner,
                current_pid()
            ),
        )
    }

    fn closed(&self) -> FfiError {
        FfiError::new(EXITLESS_ERR_CLOSED, format!("the {} is closed", self.what))
    }

    /// Closes the stream: later calls fail with `EXITLESS_ERR_CLOSED`; a call now in
    /// flight finishes first. The stream is dropped where it lies (a writer that was
    /// not finished is left incomplete): moving it out first would leave a copy of
    /// its key schedule behind in the handle's memory, which no destructor wipes.
    /// Returns whether this call closed it (false: it was already closed). Only the
    /// owner process may call it (see [`owned`]).
    fn close(&self) -> bool {
        self.state.fetch_or(CLOSED, AcqRel);
        let mut inner = lock(&self.inner);
        let Some(stream) = inner.as_mut() else { return false };
        let stats = (self.stats_of)(stream, true);
        *lock(&self.final_stats) = Some(stats);
        *inner = None;
        self.live.fetch_sub(1, Relaxed);
        true
    }
}

/// The handle at `ptr`: an error if it is null or belongs to another process.
///
/// # Safety
/// `ptr` is null or a handle from [`Handle::boxed`] that the caller has not freed
/// before this call started.
unsafe fn owned<'a, T>(ptr: *const Handle<T>, what: &str) -> FfiResult<&'a Handle<T>> {
    // SAFETY: null is checked by `as_ref`; liveness is the caller's contract.
    let handle =
        unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::invalid(format!("{what} handle is null")))?;
    if handle.owner != current_pid() {
        return Err(handle.wrong_process());
    }
    Ok(handle)
}

/// What the stream behind `ptr` did: its counters now while open, or as it closed.
/// Works on a closed handle (not a freed one); another process's handle is refused.
///
/// # Safety
/// As for [`enter`].
pub(crate) unsafe fn stats<T>(ptr: *const Handle<T>, what: &str) -> FfiResult<ExitlessStats> {
    // SAFETY: forwarded contract.
    let handle = unsafe { owned(ptr, what) }?;
    let mut inner = lock(&handle.inner);
    match inner.as_mut() {
        Some(stream) => Ok((handle.stats_of)(stream, false)),
        None => lock(&handle.final_stats).ok_or_else(|| handle.closed()),
    }
}

impl<T> Call<'_, T> {
    /// Runs `f` on the open stream, under its lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> FfiResult<R>) -> FfiResult<R> {
        match lock(&self.handle.inner).as_mut() {
            Some(inner) => f(inner),
            None => Err(self.handle.closed()),
        }
    }
}

impl<T> Drop for Call<'_, T> {
    fn drop(&mut self) {
        let before = self.handle.state.fetch_sub(CALL, AcqRel);
        if before & FREED != 0 && before / CALL == 1 {
            // SAFETY: the handle was freed while this call was inside it, and this was
            // the last call in flight: nothing else refers to it (new calls cannot
            // enter a freed handle, and `free` left its deallocation to us).
            drop(unsafe { Box::from_raw(self.ptr.cast_mut()) });
        }
    }
}

/// Enters the handle at `ptr` for one call: fails if it is null, closed, or belongs
/// to another process.
///
/// # Safety
/// `ptr` is null or a handle from [`Handle::boxed`] that the caller has not freed
/// before this call started.
pub(crate) unsafe fn enter<'a, T>(ptr: *const Handle<T>, what: &str) -> FfiResult<Call<'a, T>> {
    // SAFETY: forwarded contract.
    let handle = unsafe { owned(ptr, what) }?;
    let mut state = handle.state.load(Acquire);
    loop {
        if state & (CLOSED | FREED) != 0 {
            return Err(handle.closed());
        }
        match handle.state.compare_exchange_weak(state, state + CALL, AcqRel, Acquire) {
            Ok(_) => return Ok(Call { handle, ptr }),
            Err(now) => state = now,
        }
    }
}

/// Closes the handle at `ptr` (see [`Handle::close`]); null is an error.
///
/// # Safety
/// As for [`enter`].
pub(crate) unsafe fn close<T>(ptr: *const Handle<T>, what: &str) -> FfiResult<bool> {
    // SAFETY: forwarded contract.
    Ok(unsafe { owned(ptr, what) }?.close())
}

/// Closes the handle at `ptr` and gives up the caller's reference: the memory goes
/// now, or when the last call in flight leaves. In a process other than the
/// owner, the stream is left untouched (forgotten, not dropped: it is the
/// owner's). Returns whether this call closed the stream. Null is a no-op.
///
/// # Safety
/// `ptr` is null or a handle from [`Handle::boxed`], freed at most once.
pub(crate) unsafe fn free<T>(ptr: *mut Handle<T>) -> bool {
    // SAFETY: null is checked by `as_ref`; liveness is the caller's contract.
    let Some(handle) = (unsafe { ptr.as_ref() }) else { return false };
    let closed = if handle.owner == current_pid() {
        handle.close()
    } else {
        handle.state.fetch_or(CLOSED, AcqRel);
        // The parent's stream: its drop would drain the parent's rings and close its
        // file. The child's copy of it is left as it is.
        std::mem::forget(lock(&handle.inner).take());
        false
    };
    let before = handle.state.fetch_or(FREED, AcqRel);
    if before & FREED == 0 && before / CALL == 0 {
        // SAFETY: no call is inside the handle and none can enter (it is closed), and
        // the caller gives up its last use here: this is the only reference.
        drop(unsafe { Box::from_raw(ptr) });
    }
    closed
}

/// This process's id, cached; a `pthread_atfork` child handler refreshes it.
pub(crate) fn current_pid() -> u32 {
    static PID: AtomicU32 = AtomicU32::new(0);
    static ATFORK: Once = Once::new();
    extern "C" fn in_child() {
        PID.store(std::process::id(), Relaxed);
    }
    ATFORK.call_once(|| {
        PID.store(std::process::id(), Relaxed);
        // SAFETY: registers a handler that only stores to an atomic (async-signal
        // safe, as a fork child handler must be); no pointers are passed.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    PID.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Barrier};

    /// Records its drop, so the tests see when (and that) the stream went.
    struct Stream(Arc<AtomicBool>);
    impl Drop for Stream {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    /// Streams of the tests' kind alive (shared by tests running in parallel).
    static LIVE: AtomicU64 = AtomicU64::new(0);

    struct Ptr(*mut Handle<Stream>);
    // SAFETY: the handle is built for calls from any thread.
    unsafe impl Send for Ptr {}

    #[test]
    fn free_during_a_call_leaves_the_memory_to_the_call() {
        for _ in 0..200 {
            let dropped = Arc::new(AtomicBool::new(false));
            let h = Handle::boxed(
                Stream(dropped.clone()),
                "stream",
                |_, _| ExitlessStats { segments: 7, ..Default::default() },
                &LIVE,
            );
            let (inside, freed) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
            let p = Ptr(h);
            let caller = {
                let (inside, freed) = (inside.clone(), freed.clone());
                std::thread::spawn(move || {
                    let p = p;
                    // SAFETY: entered before the free below (which waits on `inside`).
                    let call = unsafe { enter(p.0.cast_const(), "stream") }.unwrap();
                    inside.wait();
                    // Still inside while the other thread frees: the memory stays.
                    freed.wait();
                    let after = call.with(|_| Ok(()));
                    assert_eq!(after.unwrap_err().status, EXITLESS_ERR_CLOSED);
                    drop(call); // the last one out frees the handle
                })
            };
            inside.wait();
            // SAFETY: freed once; the call inside began before.
            assert!(unsafe { free(h) }, "free closed the stream");
            assert!(dropped.load(SeqCst));
            freed.wait();
            caller.join().unwrap();
        }
    }

    #[test]
    fn a_closed_handle_refuses_calls_and_closes_once() {
        let dropped = Arc::new(AtomicBool::new(false));
        let h = Handle::boxed(
            Stream(dropped.clone()),
            "stream",
            |_, closing| ExitlessStats {
                segments: 7,
                io: exitless_io::Counters { file_ops: u64::from(closing), ..Default::default() },
                ..Default::default()
            },
            &LIVE,
        );
        // SAFETY: `h` is live until the free at the end.
        unsafe {
            assert!(enter(h.cast_const(), "stream").unwrap().with(|_| Ok(())).is_ok());
            assert_eq!(stats(h.cast_const(), "stream").unwrap().segments, 7, "while open");
            assert!(close(h.cast_const(), "stream").unwrap());
            assert!(dropped.load(SeqCst));
            let after = stats(h.cast_const(), "stream").unwrap();
            assert_eq!((after.segments, after.io.file_ops), (7, 1), "kept at close, taken after closing");
            assert!(!close(h.cast_const(), "stream").unwrap());
            assert_eq!(enter(h.cast_const(), "stream").err().unwrap().status, EXITLESS_ERR_CLOSED);
            assert!(!free(h));
            assert_eq!(
                enter::<Stream>(std::ptr::null(), "stream").err().unwrap().message,
                "stream handle is null"
            );
        }
    }
}
