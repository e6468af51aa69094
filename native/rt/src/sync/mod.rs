//! Async wait/notify and an async lock (core only).
//!
//! Both keep their state under a [`RawLock`](crate::RawLock) and never block a thread:
//! a waiter is a ticket in a FIFO list plus the waker of its last poll. Wakers are
//! woken and dropped after the lock is released.

mod mutex;
mod waiter;
mod waitlist;

pub use mutex::{Lock, Mutex, MutexGuard};
pub use waiter::{Wait, WaiterQueue};
