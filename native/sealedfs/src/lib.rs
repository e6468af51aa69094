//! exitless-sealedfs: the file logic of a LibOS mount whose files are sealed streams.
//!
//! Occlum's `sealedfs` mount (occlum_patches/, docs/OCCLUM.md) keeps every regular
//! file of a host directory as one exitless sealed stream (docs/FORMAT.md). This
//! crate is the part of that mount that knows nothing of Occlum: what a file *is*
//! (a header, sealed segments, one trusted tail) and how POSIX writes, reads and
//! truncations map onto it. It runs over a [`SegmentDevice`] (in Occlum: host file
//! IO through a SQPOLL io_uring with buffers from `sgx-untrusted-alloc`, crate
//! `exitless-occlum`; in tests: [`MemDevice`]). `core` + `alloc` only.
//!
//! Map of the crate:
//! - [`file`](mod@file): [`SealedFile`], one open file: appends fill a trusted tail that is
//!   sealed a segment at a time; reads open one segment at a time (one cached).
//! - [`device`]: the [`SegmentDevice`] trait (positional IO that may queue writes)
//!   and [`DeviceError`] (an errno).
//! - [`key`]: per-mount keys: HKDF from the SGX sealing key or a KMS key, the
//!   sealing-key request id, the stream context.
//! - [`options`]: [`MountOptions`] and [`KeySource`], checked.
//! - [`mem`]: [`MemDevice`], an in-memory device (tests, examples).
//! - [`error`]: [`Error`], with the errno the LibOS reports.
//!
//! The one rule everything here keeps: a stream key never seals two different
//! plaintexts under one nonce. A segment is sealed only when the next byte after
//! it arrives (so the final segment is never empty unless the stream is), and
//! anything that would change an already sealed segment (an overwrite below the
//! tail, a truncation into sealed data, an append after the stream was finalized)
//! re-seals the file under a fresh salt, hence a fresh stream key.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub mod device;
pub mod error;
pub mod file;
pub mod key;
pub mod mem;
pub mod options;

pub use device::{DeviceError, FillRandom, SegmentDevice};
pub use error::Error;
pub use file::SealedFile;
pub use key::{derive_mount_key, parse_key_file, sealing_key_id, stream_context, wipe};
pub use mem::MemDevice;
pub use options::{KeySource, MountOptions};
