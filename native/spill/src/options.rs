//! What a stream is opened with, and where its backend comes from.
//!
//! Backends are pooled per process: a closed stream returns its backend (an
//! io_uring ring with registered buffers, or switchless worker threads) for the next
//! stream of the same shape, so opening the thousandth spill file sets up nothing.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use exitless_io::{
    probe, Backend, BackendKind, NullBackend, OcallBackend, OcallModel, SwitchlessBackend, SwitchlessConfig,
    SyncBackend, UringBackend, UringConfig,
};
use exitless_seal::StreamParams;

use crate::error::{SpillError, SpillResult};

/// Which IO backend a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// io_uring if it works here, else plain synchronous IO.
    Auto,
    /// A concrete backend.
    Fixed(BackendKind),
}

impl BackendChoice {
    /// Parses `auto`, `uring`, `ocall`, `switchless` or `sync`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "uring" => Self::Fixed(BackendKind::Uring),
            "ocall" => Self::Fixed(BackendKind::Ocall),
            "switchless" => Self::Fixed(BackendKind::Switchless),
            "sync" => Self::Fixed(BackendKind::Sync),
            "null" => Self::Fixed(BackendKind::Null),
            _ => return None,
        })
    }

    /// The concrete backend this choice means on this machine.
    pub fn resolve(self) -> SpillResult<BackendKind> {
        match self {
            Self::Auto => {
                Ok(if probe::uring_availability().is_ok() { BackendKind::Uring } else { BackendKind::Sync })
            }
            Self::Fixed(BackendKind::Uring) => match probe::uring_availability() {
                Ok(()) => Ok(BackendKind::Uring),
                Err(why) => {
                    Err(SpillError::InvalidArgument(format!("backend 'uring' is not available here: {why}")))
                }
            },
            Self::Fixed(kind) => Ok(kind),
        }
    }
}

/// How io_uring streams poll; `None` fields take the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UringTuning {
    /// How long a stream spins for a completion before blocking (an exit);
    /// `None`: `EXITLESS_URING_SPIN_US` or 100 µs.
    pub spin: Option<std::time::Duration>,
    /// Whether rings have an SQPOLL kernel thread; `None`: `EXITLESS_URING_SQPOLL`,
    /// else [`exitless_io::uring::sqpoll_default`] (only where enough cores are
    /// available that the thread does not take the application's).
    pub sqpoll: Option<bool>,
}

/// Options of one stream.
#[derive(Clone, Debug)]
pub struct SpillOptions {
    /// Algorithm, segment size and key id (writers; readers take them from the header).
    pub params: StreamParams,
    /// The IO backend.
    pub backend: BackendChoice,
    /// Segments in flight (and backend buffers) per stream.
    pub queue_depth: usize,
    /// O_DIRECT: `None` lets the backend decide (io_uring: yes, where the file system
    /// and segment size allow), `Some(true)` requires it, `Some(false)` forbids it.
    pub direct: Option<bool>,
    /// fsync when a writer finishes.
    pub sync: bool,
    /// The OCALL cost model for the ocall and switchless backends.
    pub ocall_model: OcallModel,
    /// How io_uring streams poll (spin, SQPOLL thread); defaults by machine.
    pub uring: UringTuning,
    /// A runtime to seal large writes on in parallel (its vCPUs also poll the
    /// stream's IO completions); `None`: everything on the caller's thread.
    pub runtime: Option<exitless_rt::Runtime>,
    /// Fixed salt and nonce prefix instead of fresh randomness. Only for tests and
    /// test vectors: two streams with the same key, context and randomness share a
    /// keystream.
    pub insecure_fixed_randomness: Option<([u8; 32], [u8; 7])>,
    /// Fault injection (tests): every stream opened with these options has its
    /// backend inject this plan's faults ([`exitless_io::faults`]); the plan counts
    /// operations across all of them. A backend without support (null) refuses.
    pub faults: Option<std::sync::Arc<exitless_io::FaultPlan>>,
}

impl Default for SpillOptions {
    fn default() -> Self {
        Self {
            params: StreamParams::default(),
            backend: BackendChoice::Auto,
            queue_depth: 8,
            direct: None,
            sync: false,
            ocall_model: OcallModel::from_env(),
            uring: UringTuning::default(),
            runtime: None,
            insecure_fixed_randomness: None,
            faults: None,
        }
    }
}

/// Direct IO needs block-aligned offsets and lengths: segment sizes that are whole pages.
pub(crate) const DIRECT_ALIGN: u64 = 4096;

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
        trusted_pool_bytes: crate::writer::chunk_pool_bytes(),
    }
}

/// A backend checked out of the pool (or new); goes back on drop if healthy.
pub(crate) struct PooledBackend {
    key: PoolKey,
    /// Always `Some` until drop hands it back.
    inner: Option<Box<dyn Backend>>,
}

impl PooledBackend {
    /// Starts injecting `options`' faults (if any) into this backend's operations.
    pub(crate) fn inject(&mut self, options: &SpillOptions, path: &str) -> SpillResult {
        let Some(plan) = &options.faults else { return Ok(()) };
        if self.get().set_faults(Some(plan.clone())) {
            return Ok(());
        }
        Err(SpillError::InvalidArgument(format!(
            "{path}: the {} backend does not support fault injection",
            self.peek().kind().name()
        )))
    }

    /// A backend that never goes back to the pool (unit tests of the streams).
    #[cfg(test)]
    pub(crate) fn unpooled(backend: Box<dyn Backend>) -> Self {
        // Depth 0 is never asked for, so nothing else ever checks this out.
        let key = (backend.kind(), 0, 0, 0, UringTuning::default());
        LIVE_BACKENDS.fetch_add(1, Relaxed);
        Self { key, inner: Some(backend) }
    }

    pub(crate) fn get(&mut self) -> &mut dyn Backend {
        self.inner.as_deref_mut().expect("present until drop")
    }

    pub(crate) fn peek(&self) -> &dyn Backend {
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

/// A backend of `kind` with `depth` slots of at least `buffer_len` bytes.
pub(crate) fn checkout(
    kind: BackendKind,
    depth: usize,
    buffer_len: usize,
    model: &OcallModel,
    uring: UringTuning,
) -> SpillResult<PooledBackend> {
    if !(1..=1024).contains(&depth) {
        return Err(SpillError::InvalidArgument(format!("queue depth must be 1 to 1024, got {depth}")));
    }
    crate::memory::check_buffers(depth, buffer_len)?;
    let key = (kind, depth, buffer_len, model.cycles_per_exit, uring);
    {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let pool = own_pool(&mut pool);
        if let Some(i) = pool.iter().position(|(k, _)| *k == key) {
            let (_, b) = pool.swap_remove(i);
            return Ok(PooledBackend { key, inner: Some(b) });
        }
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
    let backend = made.map_err(|e| SpillError::Io {
        errno: e.raw_os_error().unwrap_or(0),
        message: format!("cannot set up the {} backend: {e}", kind.name()),
    })?;
    LIVE_BACKENDS.fetch_add(1, Relaxed);
    Ok(PooledBackend { key, inner: Some(backend) })
}

/// An idle backend of `options`' kind and cost model, whatever its shape, for an
/// operation that moves no data (unlink); a new one of the default shape if none is
/// idle.
pub(crate) fn checkout_any(kind: BackendKind, options: &SpillOptions) -> SpillResult<PooledBackend> {
    {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let pool = own_pool(&mut pool);
        let fits =
            |k: &PoolKey| k.0 == kind && k.3 == options.ocall_model.cycles_per_exit && k.4 == options.uring;
        if let Some(i) = pool.iter().position(|(k, _)| fits(k)) {
            let (key, b) = pool.swap_remove(i);
            return Ok(PooledBackend { key, inner: Some(b) });
        }
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
    crate::writer::clear_chunk_pool();
}
