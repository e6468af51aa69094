//! exitless-io: where sealed segments meet the disk, with as few enclave exits as
//! possible. It knows nothing of crypto: it moves buffers of bytes.
//!
//! Map of the crate:
//! - [`backend`]: the [`Backend`] trait the spill streams drive (a fixed set of
//!   buffer slots, submit / wait / fsync), [`Counters`], [`BackendKind`].
//! - [`untrusted`]: [`UntrustedRegion`], memory outside the enclave's trust, with its
//!   own type so it cannot be mixed up with trusted memory.
//! - [`validate`]: the completion validator (slot + generation in `user_data`, length
//!   and errno checks, ring-bound checks). Pure logic, no IO.
//! - [`uring`]: [`UringBackend`], SQPOLL io_uring with registered untrusted buffers.
//! - [`ocall`]: [`OcallBackend`], today's Occlum hostfs path with modeled exits.
//! - [`switchless`]: [`SwitchlessBackend`], host worker threads with exit fallback.
//! - [`sync`]: [`SyncBackend`], plain pread/pwrite, the fallback.
//! - [`null`]: [`NullBackend`], discards writes (benchmarks without IO).
//! - [`driver`]: [`IoDriver`], async submit/await over any backend, completions
//!   delivered by whoever calls `poll` (exitless-rt's vCPUs).
//! - [`model`]: the OCALL cost model (calibrated TSC spin) shared by ocall and switchless.
//! - [`probe`]: which backends work on this machine, and why not.

pub mod backend;
pub mod driver;
pub mod model;
pub mod null;
pub mod ocall;
pub mod probe;
pub mod switchless;
pub mod sync;
pub mod untrusted;
pub mod uring;
pub mod validate;

pub use backend::{Backend, BackendKind, Completion, Counters, OpKind};
pub use driver::IoDriver;
pub use model::OcallModel;
pub use null::NullBackend;
pub use ocall::OcallBackend;
pub use switchless::{SwitchlessBackend, SwitchlessConfig};
pub use sync::SyncBackend;
pub use untrusted::UntrustedRegion;
pub use uring::{UringBackend, UringConfig};
