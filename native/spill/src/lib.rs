//! exitless-spill: sealed spill files, pipelined through an IO backend.
//!
//! A [`SpillWriter`] accumulates plaintext in one trusted segment buffer, seals it
//! in place there, and hands the ciphertext to the backend, which copies it into a
//! free (for io_uring: untrusted, registered) slot and writes it while the next
//! segment fills: up to `queue_depth` segments are in flight. A [`SpillReader`]
//! reads ahead into backend slots and opens each segment after copying it into
//! trusted memory exactly once. The segment is the unit of authentication, not of
//! IO: past [`memory::COALESCE_AFTER`] a stream moves to [`memory::IO_SIZE`] slots
//! and its pipe gathers consecutive sealed segments into one write (its reader reads
//! windows of consecutive segments), so small segments reach the disk in large IOs.
//! Memory per stream is bounded by `queue_depth × IO_SIZE` of backend buffers
//! (segments above [`memory::IO_SIZE`] travel in several IOs) plus one trusted
//! segment that grows with the data; nothing is sized from an unauthenticated
//! header field.
//!
//! Map of the crate (arrows run down the list: a module uses only those below it):
//! - [`writer`]: the [`SpillWriter`]; [`reader`]: the [`SpillReader`].
//! - `pipe`: where sealed segments go: gathered into IO-sized writes, to the backend.
//! - [`file`](mod@file): a stream's file, opened, checked, closed and deleted ([`unlink`])
//!   through its backend: on io_uring, a spill file's whole life makes no exit;
//!   [`file::create`] and [`file::close`] are public for IO outside a stream (the
//!   benchmarks' plaintext baseline).
//! - [`pool`]: where a stream's backend comes from (pooled per process); public for
//!   IO outside a stream with the same backends (the benchmarks' plaintext baseline).
//! - [`options`]: [`SpillOptions`], [`BackendChoice`], [`UringTuning`].
//! - `sealing`: parallel sealing on a runtime's vCPUs, and its pooled chunk buffers.
//! - [`randomness`]: a fresh salt and nonce prefix for a new stream.
//! - [`memory`]: how much memory a stream takes ([`memory::IO_SIZE`] per IO,
//!   [`memory::MAX_STREAM_BUFFERS`] per stream), trusted buffers that grow with the data.
//! - [`runtime`]: the process-wide runtime, started lazily.
//! - [`error`]: [`SpillError`], which keeps the format's error classes apart from IO errors
//!   and from rejected completions, with the file, segment and operation as fields
//!   and the error underneath as its `source()`.
//! - [`stats`]: [`StreamStats`], what a stream did (backend counters plus its own calls).

pub mod error;
pub mod file;
pub mod memory;
pub mod options;
mod pipe;
pub mod pool;
pub mod randomness;
pub mod reader;
pub mod runtime;
mod sealing;
pub mod stats;
pub mod writer;

pub use error::{SpillError, SpillResult};
pub use file::unlink;
pub use options::{BackendChoice, SpillOptions, UringTuning};
pub use pool::{resources, Resources};
pub use reader::{inspect, Inspection, SpillReader};
pub use stats::StreamStats;
pub use writer::SpillWriter;
