//! exitless-rt: a coroutine runtime that keeps enclave exits rare, and counts them.
//!
//! In an SGX enclave every syscall is an exit of 8,000–17,000 cycles, including the
//! futex behind parking or unparking a thread. So `n` vCPU threads run tasks from
//! per-vCPU queues, steal from each other when idle, drive timers and IO pollers
//! themselves (no timer or poller thread), spin a little before parking, and count
//! every park and unpark as an exit ([`RuntimeStats`]).
//!
//! Map of the crate:
//! - [`runtime`]: [`Runtime`], [`Builder`], `block_on`, [`current`]; the handle.
//! - private `sched`: `Shared` (injector, wake-up protocol, shutdown), `vcpu` (the
//!   loop: run, steal, spin, park), `context` (which runtime/vCPU this thread is).
//! - [`task`]: [`JoinHandle`], [`JoinError`], [`yield_now`]; the live-task wrapper.
//! - [`scope`]: [`Scope`], [`ScopedJoinHandle`]: tasks that borrow the caller's stack.
//! - [`time`]: [`Sleep`], [`sleep`], [`timeout`], [`Elapsed`].
//! - [`poller`]: [`Poller`], [`PollerId`]: IO completions polled by the vCPUs.
//! - private `park`: the thread parker of `block_on`, `join`, `scope` (counts exits).
//! - [`sync`]: [`WaiterQueue`] and [`Mutex`], async wait/notify and lock.
//! - [`lock`]: [`RawLock`], [`SpinLock`]: the lock under `sync`, timers and registry.
//! - [`timer`]: [`TimerQueue`], nanosecond deadlines in order, driven by the caller.
//! - private `counters` (per-vCPU shards of [`RuntimeStats`]) and `registry` (idle
//!   tasks' wakers, so shutdown can cancel them).
//!
//! Semantics worth knowing: dropping a [`JoinHandle`] cancels its task (as in
//! async-task; [`JoinHandle::detach`] lets it run), a [`ScopedJoinHandle`] detaches.
//! A wake on a vCPU queues on that vCPU (the woken task runs next); a wake from any
//! other thread goes to the injector and unparks a vCPU only if none spins and one is
//! parked. With pollers registered one parked vCPU wakes every millisecond to poll
//! (kernel IO completions cannot unpark anyone). Shutdown cancels every task, idle
//! ones included (an hour-long sleep, a queue nobody notifies).
//!
//! std and core: `lock`, `counters`, `registry`, `timer` and `sync` use only `core` +
//! `alloc`, for Occlum's LibOS (`--no-default-features` builds just those). The `std`
//! feature adds the scheduler: it needs threads and their parking, `Instant` (the
//! timers' clock), `catch_unwind` (a panicking task must not kill its vCPU) and
//! thread-locals, and crossbeam-deque and async-task's panic propagation need std.
//!
//! Model checking: `tests/shuttle.rs` runs [`WaiterQueue`] and [`Mutex`] under
//! `shuttle` with a [`RawLock`] built from shuttle's atomics. The scheduler
//! (crossbeam-deque, std parking) is not expressible over shuttle's primitives; its
//! wake-up protocol is covered by stress tests (`tests/runtime.rs`) instead.
#![cfg_attr(not(feature = "std"), no_std)]
// Without the scheduler, counters and the registry have no user yet.
#![cfg_attr(not(feature = "std"), allow(dead_code))]

extern crate alloc;

pub mod lock;
pub mod sync;
pub mod timer;

mod counters;
mod registry;

#[cfg(feature = "std")]
mod park;
#[cfg(feature = "std")]
pub mod poller;
#[cfg(feature = "std")]
pub mod runtime;
#[cfg(feature = "std")]
mod sched;
#[cfg(feature = "std")]
pub mod scope;
#[cfg(feature = "std")]
pub mod task;
#[cfg(feature = "std")]
pub mod time;

pub use counters::RuntimeStats;
pub use lock::{RawLock, SpinLock};
pub use sync::{Mutex, MutexGuard, WaiterQueue};
pub use timer::TimerQueue;

#[cfg(feature = "std")]
pub use poller::{Poller, PollerId};
#[cfg(feature = "std")]
pub use runtime::{current, Builder, Runtime};
#[cfg(feature = "std")]
pub use scope::{Scope, ScopedJoinHandle};
#[cfg(feature = "std")]
pub use task::{yield_now, JoinError, JoinHandle};
#[cfg(feature = "std")]
pub use time::{sleep, timeout, Elapsed, Sleep};
