//! exitless-seal's errors as Java exceptions.

use exitless_seal::{Error, ErrorKind};
use jni::JNIEnv;

/// Thrown for tampered, truncated, reordered or spliced data, or a wrong key or context.
pub const INTEGRITY: &str = "io/exitless/spark/SealIntegrityException";
/// Thrown for bytes that are not a sealed stream, or an unsupported version or algorithm.
pub const FORMAT: &str = "io/exitless/spark/SealFormatException";
/// Thrown when the KMS cannot open, unwrap or wrap.
pub const KMS: &str = "io/exitless/spark/KmsException";
/// Thrown for a caller's mistake (a bad length, a freed handle).
pub const INVALID: &str = "java/lang/IllegalArgumentException";
/// Thrown when the OS gives no randomness or the JVM refuses an array.
pub const IO: &str = "java/io/IOException";

/// The Java exception class of a seal error.
pub fn class_of(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::Format => FORMAT,
        _ => INVALID,
    }
}

/// Throws `class` with `message` (an exception already pending stays: it is the first cause).
pub fn throw(env: &mut JNIEnv<'_>, class: &str, message: &str) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    // If even this fails the JVM is out of memory and has its own exception pending.
    let _ = env.throw_new(class, message);
}

/// Throws the Java form of a seal error; the message names the segment, never a key.
pub fn seal_error(env: &mut JNIEnv<'_>, e: &Error) {
    throw(env, class_of(e), &format!("exitless: {e}"));
}
