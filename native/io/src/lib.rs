//! exitless-io: where sealed segments meet the disk, with as few enclave exits as
//! possible. It knows nothing of crypto: it moves buffers of bytes.
//!
//! Map of the crate. Core + alloc (always built; `--no-default-features` builds only
//! these, for Occlum's LibOS, and CI checks them for `x86_64-unknown-none`):
//! - [`backend`]: the [`Backend`] trait the spill streams drive (a fixed set of
//!   buffer slots, submit / wait / fsync), [`Completion`], [`OpKind`], [`Counters`],
//!   [`BackendKind`], [`RawFd`]; and [`FileOp`], the file's lifecycle (open, close,
//!   unlink, stat, truncate, allocate), which backends run too so none is an
//!   unseen exit.
//! - [`error`]: [`Error`], [`ErrorKind`], [`error::Result`]: `std::io`'s with `std`, a small
//!   stand-in with the same constructors and accessors without it; and
//!   [`RejectedCompletion`], a completion the validator rejected (a hostile host,
//!   not an errno), recognized with [`error::rejected_completion`].
//! - [`validate`]: the completion validator ([`validate::SlotTable`]: slot +
//!   generation in `user_data`, length and errno checks; ring-bound checks).
//! - [`ring`]: [`RingSlots`], the trusted side of an io_uring backend without the
//!   ring: slot layout, [`ring::Submission`]s to push, and what each validated
//!   completion means ([`ring::Step`]: finished, or resubmit a short transfer).
//! - [`untrusted`]: [`UntrustedRegion`], memory outside the enclave's trust, with its
//!   own type so it cannot be mixed up with trusted memory; built over a raw pointer
//!   an allocator hands in (`from_raw_parts`; Occlum: sgx-untrusted-alloc).
//! - [`errno`]: the Linux errno values completions carry (no `libc` needed).
//! - [`faults`]: fault injection ([`faults::FaultPlan`]: ENOSPC, EIO, EINTR or a short
//!   transfer at the n-th read or write of a stream), which every syscall backend
//!   applies where it meets the kernel ([`Backend::set_faults`]); and forged
//!   completions, which io_uring feeds its validator.
//! - [`op`]: [`OpKind`], read or write, which backends and fault plans both name.
//!
//! With the `std` feature (default) — these make syscalls, spawn threads, read the
//! clock or the environment, or lock a `std::sync::Mutex`:
//! - [`uring`]: [`UringBackend`], SQPOLL io_uring with registered untrusted buffers
//!   (the `io-uring` crate over [`RingSlots`]), and [`UntrustedRegion::new`] (mmap).
//! - [`ocall`]: [`OcallBackend`], today's Occlum hostfs path with modeled exits.
//! - [`switchless`]: [`SwitchlessBackend`], host worker threads with exit fallback.
//! - [`sync`]: [`SyncBackend`], plain pread/pwrite, the fallback.
//! - [`null`]: [`NullBackend`], discards writes (benchmarks without IO).
//! - [`model`]: the OCALL cost model (calibrated TSC spin, env variables) shared by
//!   ocall and switchless.
//! - [`probe`]: which backends work on this machine, and why not.
//!
//! With the `driver` feature (off by default; it implies `std`):
//! - [`driver`]: [`IoDriver`], async submit/await over any backend, completions
//!   delivered by whoever calls `poll` (exitless-rt's vCPUs); it locks a std Mutex.
//!   For tasks on a runtime that await IO. No product code uses it: the spill
//!   streams block in their own backend. Its users today are tests
//!   (`tests/driver.rs`, and exitless-spill's `tests/runtime.rs`, which switches
//!   the feature on through its dev-dependency).
#![cfg_attr(not(feature = "std"), no_std)]
// Without `std` (or `driver`) the map above names modules that are not built.
#![cfg_attr(not(feature = "driver"), allow(rustdoc::broken_intra_doc_links))]

extern crate alloc;

pub mod backend;
pub mod errno;
pub mod error;
pub mod faults;
pub mod op;
pub mod ring;
pub mod untrusted;
pub mod validate;

#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "std")]
mod files;
#[cfg(feature = "std")]
pub mod model;
#[cfg(feature = "std")]
pub mod null;
#[cfg(feature = "std")]
pub mod ocall;
#[cfg(feature = "std")]
pub mod probe;
#[cfg(feature = "std")]
pub mod switchless;
#[cfg(feature = "std")]
pub mod sync;
#[cfg(feature = "std")]
pub mod uring;

pub use backend::{
    Backend, BackendKind, Completion, Counters, FileOp, FileOpOutput, FileStat, FileType, OpKind, RawFd,
};
pub use error::{Error, ErrorKind, RejectedCompletion};
pub use faults::{Fault, FaultPlan};
pub use ring::RingSlots;
pub use untrusted::UntrustedRegion;

#[cfg(feature = "driver")]
pub use driver::IoDriver;
#[cfg(feature = "std")]
pub use model::OcallModel;
#[cfg(feature = "std")]
pub use null::NullBackend;
#[cfg(feature = "std")]
pub use ocall::OcallBackend;
#[cfg(feature = "std")]
pub use switchless::{SwitchlessBackend, SwitchlessConfig};
#[cfg(feature = "std")]
pub use sync::SyncBackend;
#[cfg(feature = "std")]
pub use uring::{UringBackend, UringConfig};
