//! exitless-seal: the sealed stream format (docs/FORMAT.md), nothing else.
//!
//! A sealed stream is a STREAM-construction online AEAD: a header (68 bytes in
//! format version 1; 72 bytes plus a key envelope, the wrapped data key, in version 2), a
//! per-stream key derived with HKDF-SHA256 from a data key, the header and a caller
//! context, and fixed-size ciphertext segments whose nonces carry the segment index
//! and a last-segment flag. This crate knows nothing of files or IO: it seals one
//! segment into a buffer the caller provides (later, untrusted memory) and opens one
//! segment out of a buffer, by index, so callers get random access and can pipeline.
//!
//! Map of the crate:
//! - [`key`]: [`DataKey`], 32 secret bytes, zeroized on drop, never printed.
//! - [`header`]: [`Header`] (parse, build) and [`Algorithm`].
//! - [`layout`]: [`Layout`], where each segment lives and how big it is.
//! - [`limits`]: the format's sizes (tag, segment bounds, header lengths), shared by both.
//! - [`stream`]: [`Encryptor`] and [`Decryptor`], one segment at a time; plus
//!   [`seal_into`] / [`open_into`] (and `_to_vec`) for whole buffers.
//! - [`error`]: [`Error`], with the format's two error classes.
//! - private `provider`: the AEAD and HKDF primitives, and `wipe`, which zeroizes
//!   primitives' key schedules and, with [`scrub_stack`], the stack that
//!   key-handling frames used. [`PROVIDER`] names the provider compiled in.
//!
//! Crypto providers (features; all implement the same AES-256-GCM,
//! ChaCha20-Poly1305 and HKDF-SHA256, and all pass the same test vectors):
//! - `ring` (the default): ring 0.17, needs a C compiler.
//! - `aws-lc`: aws-lc-rs (AWS-LC), what the host build (exitless-ffi, so the Python
//!   package) uses: 1.3–1.7× ring's AES-GCM on a VAES machine with cache-resident
//!   buffers, a tie when memory-bound (`examples/providers.rs`). Needs a C compiler
//!   (no cmake, Go or clang), std and Rust 1.71, so never in the enclave.
//! - `pure-rust`: RustCrypto, no C compiler: the SGX / Occlum enclave build.
//!
//! When several are on (Cargo unifies features across dependents), exactly one is
//! used, in this order: `aws-lc`, then `ring`, then `pure-rust`.
//!
//! The crate is `no_std` + `alloc`; randomness (salt, nonce prefix) comes from the
//! caller, since `no_std` has no entropy source.
#![no_std]
#![deny(unsafe_code)] // one exception: `wipe`, with its safety argument

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(not(any(feature = "ring", feature = "pure-rust", feature = "aws-lc")))]
compile_error!("exitless-seal needs a crypto provider: enable feature `ring`, `aws-lc` or `pure-rust`");

pub mod error;
pub mod header;
pub mod key;
pub mod layout;
pub mod limits;
pub mod stream;

mod provider;
mod wipe;

pub use error::{Error, ErrorKind};
pub use header::{
    Algorithm, Header, KeyId, HEADER_LEN, MAX_ENVELOPE_LEN, MAX_HEADER_LEN, NONCE_PREFIX_LEN, SALT_LEN,
    V2_FIXED_LEN,
};
pub use key::DataKey;
pub use layout::{Geometry, Layout, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, TAG_LEN};
pub use stream::{
    open_into, open_to_vec, seal_into, seal_to_vec, Decryptor, Encryptor, SealSpec, StreamParams,
};
pub use wipe::{scrub_stack, SCRUB_STACK_BYTES};

/// The crypto provider compiled in: `"aws-lc"`, `"ring"` or `"pure-rust"` (the
/// first of these whose feature is on).
pub const PROVIDER: &str = provider::NAME;
