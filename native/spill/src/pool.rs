//! Where a stream's backend comes from: backends are pooled per process, so a
//! closed stream returns its backend (an io_uring ring with registered buffers, or
//! switchless worker threads) for the next stream of the same shape, and opening
//! the thousandth spill file sets up nothing. A forked child never reuses its
//! parent's (their registered buffers are the parent's pages).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use exitless_io::{
    Backend, BackendKind, NullBackend, OcallBackend, OcallModel, SwitchlessBackend, SwitchlessConfig,
    SyncBackend, UringBackend, UringConfig,
};

use crate::error::{SpillError, SpillResult};
use crate::options::{SpillOptions, UringTuning};

type PoolKey = (BackendKind, usize, usize, u64, UringTuning);

/// Idle backends, with the process that made them. A forked child must not reuse
/// its parent's: their registered buffers are the parent's pages (the child's copy
/// of them is not what the kernel reads), and their threads are not in the child.
static POOL: Mutex<(u32, Idle)> = Mutex::new((0, Vec::new()));

type Idle = Vec<(PoolKey, Box<dyn Backend>)>;

/// The pool's backends, after leaking (never using, never dropping, since dropping
/// would join threads that are not there) any another process left.
fn own_pool(pool: &mut (u32, Idle)) -> &mut Idle {
    let pid = std::process::id();
    if pool.0 != pid {
        let inherited = std::mem::take(&mut pool.1);
        LIVE_BACKENDS.fetch_sub(inherited.len().min(LIVE_BACKENDS.load(Relaxed)), Relaxed);
        std::mem::forget(inherited);
        pool.0 = pid;
    }
    &mut pool.1
}
const POOL_MAX: usize = 64;

/// Backends alive in this process: checked out by a stream, or idle in the pool.
static LIVE_BACKENDS: AtomicUsize = AtomicUsize::new(0);

/// What the process holds for its streams, for leak checks (see [`resources`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Backends alive: in use by a stream, or idle in the pool.
    pub backends: usize,
    /// Of those, idle in the pool.
    pub pooled_backends: usize,
    /// Untrusted regions alive (backend buffers), and their bytes.
    pub untrusted_regions: usize,
    /// Bytes of untrusted memory alive.
    pub untrusted_bytes: usize,
    /// Trusted chunk buffers kept for parallel sealing, in bytes.
    pub trusted_pool_bytes: usize,
}

/// What the process holds for its streams right now.
pub fn resources() -> Resources {
    let pooled_backends = own_pool(&mut POOL.lock().unwrap_or_else(|p| p.into_inner())).len();
    let (untrusted_regions, untrusted_bytes) = exitless_io::untrusted::live();
    Resources {
        backends: LIVE_BACKENDS.load(Relaxed),
        pooled_backends,
        untrusted_regions,
        untrusted_bytes,
        trusted_pool_bytes: crate::sealing::chunk_pool::bytes(),
    }
}

/// A backend checked out of the pool (or new); goes back on drop if healthy.
pub struct PooledBackend {
    key: PoolKey,
    /// Always `Some` until drop hands it back.
    inner: Option<Box<dyn Backend>>,
}

impl PooledBackend {
    /// Starts injecting `options`' faults (if any) into this backend's operations.
    /// Forged completions only io_uring can take (its completions pass the validator).
    pub(crate) fn inject(&mut self, options: &SpillOptions, path: &str) -> SpillResult {
        let Some(plan) = &options.faults else { return Ok(()) };
        let kind = self.peek().kind();
        if plan.forges() && kind != BackendKind::Uring {
            return Err(SpillError::invalid(
                Some(path),
                format!(
                    "the {} backend cannot forge completions (fault injection: forge is for uring)",
                    kind.name()
                ),
            ));
        }
        if self.get().set_faults(Some(plan.clone())) {
            return Ok(());
        }
        Err(SpillError::invalid(
            Some(path),
            format!("the {} backend does not support fault injection", self.peek().kind().name()),
        ))
    }

    /// A backend that never goes back to the pool (unit tests of the streams).
    #[cfg(test)]
    pub(crate) fn unpooled(backend: Box<dyn Backend>) -> Self {
        // Depth 0 is never asked for, so nothing else ever checks this out.
        let key = (backend.kind(), 0, 0, 0, UringTuning::default());
        LIVE_BACKENDS.fetch_add(1, Relaxed);
        Self { key, inner: Some(backend) }
    }

    /// The backend.
    pub fn get(&mut self) -> &mut dyn Backend {
        self.inner.as_deref_mut().expect("present until drop")
    }

    /// The backend, read-only (its counters, kind, depth).
    pub fn peek(&self) -> &dyn Backend {
        self.inner.as_deref().expect("present until drop")
    }
}

impl Drop for PooledBackend {
    fn drop(&mut self) {
        if let Some(mut b) = self.inner.take() {
            b.set_faults(None);
            if b.in_flight() == 0 && b.counters().completions_rejected == 0 {
                let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
                let pool = own_pool(&mut pool);
                if pool.len() < POOL_MAX {
                    pool.push((self.key, b));
                    return;
                }
            }
            drop(b);
            LIVE_BACKENDS.fetch_sub(1, Relaxed);
        }
    }
}

/// An idle backend of this process whose key `fits`, out of the pool.
fn take_idle(fits: impl Fn(&PoolKey) -> bool) -> Option<PooledBackend> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pool = own_pool(&mut pool);
    let i = pool.iter().position(|(k, _)| fits(k))?;
    let (key, b) = pool.swap_remove(i);
    Some(PooledBackend { key, inner: Some(b) })
}

/// A backend of `kind` with `depth` slots of at least `buffer_len` bytes: an idle
/// one of the same shape and cost model from the pool, or a new one. A stream's
/// backend comes from here; so may one for IO outside a stream, which then counts
/// in [`resources`] and goes back to the pool on drop, as a stream's does.
pub fn checkout(
    kind: BackendKind,
    depth: usize,
    buffer_len: usize,
    model: &OcallModel,
    uring: UringTuning,
) -> SpillResult<PooledBackend> {
    if !(1..=1024).contains(&depth) {
        return Err(SpillError::invalid(None, format!("queue depth must be 1 to 1024, got {depth}")));
    }
    crate::memory::check_buffers(depth, buffer_len)?;
    let key = (kind, depth, buffer_len, model.cycles_per_exit, uring);
    if let Some(idle) = take_idle(|k| *k == key) {
        return Ok(idle);
    }
    let made: std::io::Result<Box<dyn Backend>> = match kind {
        BackendKind::Uring => {
            let mut config = UringConfig::new(depth, buffer_len);
            // An enter from an enclave is an exit: charged as the OCALL path's are.
            config.exit_model = Some(*model);
            if let Some(spin) = uring.spin {
                config.spin = spin;
            }
            if let Some(sqpoll) = uring.sqpoll {
                config.sqpoll = sqpoll;
            }
            if let Some(idle) = uring.sq_idle_ms {
                config.sq_idle_ms = idle;
            }
            UringBackend::new(config).map(|b| Box::new(b) as Box<dyn Backend>)
        }
        BackendKind::Ocall => OcallBackend::new(depth, buffer_len, *model).map(|b| Box::new(b) as _),
        BackendKind::Switchless => {
            SwitchlessBackend::new(depth, buffer_len, SwitchlessConfig::default(), *model)
                .map(|b| Box::new(b) as _)
        }
        BackendKind::Sync => SyncBackend::new(depth, buffer_len).map(|b| Box::new(b) as _),
        BackendKind::Null => NullBackend::new(depth, buffer_len).map(|b| Box::new(b) as _),
    };
    let backend = made.map_err(|e| SpillError::set_up(e, kind))?;
    LIVE_BACKENDS.fetch_add(1, Relaxed);
    Ok(PooledBackend { key, inner: Some(backend) })
}

/// An idle backend of `options`' kind and cost model, whatever its shape, for an
/// operation that moves no data (unlink); a new one of the default shape if none is
/// idle.
pub(crate) fn checkout_any(kind: BackendKind, options: &SpillOptions) -> SpillResult<PooledBackend> {
    let fits =
        |k: &PoolKey| k.0 == kind && k.3 == options.ocall_model.cycles_per_exit && k.4 == options.uring;
    if let Some(idle) = take_idle(fits) {
        return Ok(idle);
    }
    let slot = crate::memory::slot_len(options.params.segment_size as usize);
    checkout(kind, options.queue_depth, slot, &options.ocall_model, options.uring)
}

/// Empties the backend pool (tests; and to release SQPOLL rings) and the pool of
/// trusted chunk buffers kept for parallel sealing.
pub fn clear_pool() {
    let idle = std::mem::take(own_pool(&mut POOL.lock().unwrap_or_else(|p| p.into_inner())));
    let n = idle.len();
    drop(idle);
    LIVE_BACKENDS.fetch_sub(n, Relaxed);
    crate::sealing::chunk_pool::clear();
}
