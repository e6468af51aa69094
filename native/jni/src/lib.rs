//! exitless-jni: the sealed stream format for the JVM, so Spark's and Hadoop's codecs
//! (jvm/, package `io.exitless.spark`) seal with the one implementation, exitless-seal.
//!
//! Map of the crate:
//! - [`exports`]: the `Java_io_exitless_spark_NativeSeal_*` entry points, one per
//!   `native` method of `NativeSeal.java`; each catches its errors and throws a Java
//!   exception instead, and never unwinds into the JVM.
//! - private `handle`: the only `unsafe` besides the byte-array views: boxed Rust
//!   objects ([`Key`], [`Sealer`], [`Opener`], [`KmsHandle`]) handed to Java as `long`s
//!   and back.
//! - private `throw`: exitless-seal's error classes as Java exceptions:
//!   `SealIntegrityException` (tampered, truncated, reordered, spliced, wrong key),
//!   `SealFormatException` (not a sealed stream, unsupported version), both
//!   `IOException`s so Spark treats them as corrupt blocks; `KmsException` for the KMS
//!   (exitless-kms: the same keyrings and tokens as the Python package's `exitless.kms`);
//!   `IllegalArgumentException` for a caller's mistake.
//!
//! The JVM side does the IO (Spark's streams); this crate seals and opens one segment
//! at a time in place, in a Java `byte[]` it views without copying.
//!
//! NOTE: the handles are raw pointers. The Java classes that own them (`DataKey`,
//! `SealedOutputStream`, `SealedInputStream`, the codecs) keep each in a private field,
//! use it only under the owner's monitor while it is non-zero, and zero it under the
//! same monitor when they free it, so a handle reaching this crate is live and used by
//! one thread at a time. A close racing a call is an `IOException` in Java, never a
//! use after free here.

pub mod exports;
mod handle;
mod throw;

use exitless_seal::{DataKey, Decryptor, Encryptor};

/// A data key held for the JVM: zeroized when Java frees it (`DataKey.close`). A key a
/// KMS made carries the id of the KMS key that wrapped it and its envelope (not secret).
pub struct Key {
    pub(crate) key: DataKey,
    pub(crate) key_id: [u8; 16],
    pub(crate) envelope: Option<Vec<u8>>,
}

/// A KMS opened from its URI (exitless-kms): `Kms.java` owns it.
pub struct KmsHandle(pub(crate) exitless_kms::Kms);

/// One stream being sealed: its derived key, header and layout.
pub struct Sealer(pub(crate) Encryptor);

/// One stream being opened.
pub struct Opener(pub(crate) Decryptor);
