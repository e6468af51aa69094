//! What a stream is opened with: [`SpillOptions`], which backend
//! ([`BackendChoice`]) and how io_uring polls ([`UringTuning`]). Where the backend
//! itself comes from is [`crate::pool`].

use exitless_io::{probe, BackendKind, OcallModel};
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
                    Err(SpillError::invalid(None, format!("backend 'uring' is not available here: {why}")))
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
    /// How long the SQPOLL thread spins idle before it sleeps, in milliseconds;
    /// `None`: [`exitless_io::uring::sq_idle_ms`]. Rings share one thread, which
    /// idles as long as the longest of theirs.
    pub sq_idle_ms: Option<u32>,
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
    /// O_DIRECT: `Some(true)` requires it (segment sizes of whole 4 KiB blocks);
    /// `None` or `Some(false)`: the page cache (the default, measured faster here).
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
