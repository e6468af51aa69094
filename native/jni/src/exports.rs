//! The entry points of `io.exitless.spark.NativeSeal` (jvm/src/io/exitless/spark/NativeSeal.java).
//!
//! Every function runs its body through `guard`: an error becomes a Java exception
//! and the function returns a neutral value (0, null), which Java never sees because
//! the exception is pending; a panic becomes an `IllegalStateException`, never an
//! unwind into the JVM.

use std::panic::{catch_unwind, AssertUnwindSafe};

use exitless_seal::{DataKey, Decryptor, Encryptor, Header, KeyId, StreamParams};
use jni::objects::{JByteArray, JClass, JString};
use jni::sys::{jboolean, jbyteArray, jint, jlong, jstring, JNI_TRUE};
use jni::JNIEnv;
use zeroize::Zeroize;

use crate::handle::{borrow, free_handle, into_handle, with_bytes_mut};
use crate::throw::{seal_error, throw, INVALID, IO, KMS};
use crate::{Key, KmsHandle, Opener, Sealer};

/// Why an entry point failed.
enum Fail {
    Seal(exitless_seal::Error),
    Kms(exitless_kms::KmsError),
    Java(&'static str, String),
    Jni(jni::errors::Error),
}

impl From<exitless_seal::Error> for Fail {
    fn from(e: exitless_seal::Error) -> Self {
        Self::Seal(e)
    }
}

impl From<exitless_kms::KmsError> for Fail {
    fn from(e: exitless_kms::KmsError) -> Self {
        Self::Kms(e)
    }
}

impl From<jni::errors::Error> for Fail {
    fn from(e: jni::errors::Error) -> Self {
        Self::Jni(e)
    }
}

fn invalid(message: impl Into<String>) -> Fail {
    Fail::Java(INVALID, message.into())
}

/// Runs `body`; on error or panic throws the matching Java exception and returns `default`.
fn guard<'l, T>(
    env: &mut JNIEnv<'l>,
    default: T,
    body: impl FnOnce(&mut JNIEnv<'l>) -> Result<T, Fail>,
) -> T {
    match catch_unwind(AssertUnwindSafe(|| body(env))) {
        Ok(Ok(v)) => v,
        Ok(Err(Fail::Seal(e))) => {
            seal_error(env, &e);
            default
        }
        Ok(Err(Fail::Kms(e))) => {
            throw(env, KMS, &format!("exitless: {e}"));
            default
        }
        Ok(Err(Fail::Java(class, message))) => {
            throw(env, class, &format!("exitless: {message}"));
            default
        }
        // A JNI failure (a null array, a JVM out of memory) leaves its own exception
        // pending, which `throw` keeps; otherwise report it as IO.
        Ok(Err(Fail::Jni(e))) => {
            throw(env, IO, &format!("exitless: JNI call failed: {e}"));
            default
        }
        Err(_) => {
            throw(
                env,
                "java/lang/IllegalStateException",
                "exitless: internal error (a panic in exitless-jni)",
            );
            default
        }
    }
}

/// The object behind a handle, or an `IllegalArgumentException` for a freed one.
///
/// NOTE (crate root): Java passes a live handle under its owner's monitor.
fn live<'a, T>(handle: jlong, what: &str) -> Result<&'a T, Fail> {
    // SAFETY: the Java owner passes 0 or a handle it made with the matching constructor
    // and has not freed, while holding its monitor (crate root's NOTE).
    unsafe { borrow::<T>(handle) }.ok_or_else(|| invalid(format!("the {what} is closed")))
}

/// Frees the object behind a handle its Java owner gives up (0 is ignored).
///
/// NOTE (crate root): each owner frees its handle once, under its monitor, and zeroes its
/// field, so the handle is never used again.
fn release<T>(env: &mut JNIEnv<'_>, handle: jlong) {
    guard(env, (), |_| {
        // SAFETY: the Java owner passes 0 or a handle it made with the matching constructor,
        // once, under its monitor, and never passes it again (crate root's NOTE).
        unsafe { free_handle::<T>(handle) };
        Ok(())
    })
}

/// The first `len` bytes of a Java array, checked against its length.
fn prefix(env: &mut JNIEnv<'_>, array: &JByteArray<'_>, len: jint) -> Result<Vec<u8>, Fail> {
    let mut bytes = env.convert_byte_array(array)?;
    let len = usize::try_from(len).map_err(|_| invalid("negative length"))?;
    if len > bytes.len() {
        return Err(invalid("length beyond the array"));
    }
    bytes.truncate(len);
    Ok(bytes)
}

fn random<const N: usize>() -> Result<[u8; N], Fail> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Fail::Java(IO, format!("no randomness from the OS: {e}")))?;
    Ok(bytes)
}

/// `static native String provider()`: the crypto provider compiled in.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_provider<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let s: JString<'_> = env.new_string(exitless_seal::PROVIDER)?;
        Ok(s.into_raw())
    })
}

/// `static native long keyNew(byte[] key)`: holds a 32-byte data key; Java wipes its copy.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_keyNew<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    key: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let mut bytes = env.convert_byte_array(&key)?;
        let made = DataKey::from_slice(&bytes);
        bytes.zeroize();
        Ok(into_handle(Key { key: made?, key_id: [0; 16], envelope: None }))
    })
}

/// `static native void keyFree(long key)`: wipes and frees the key (0 is ignored).
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_keyFree<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    key: jlong,
) {
    release::<Key>(&mut env, key) // the DataKey inside zeroizes itself on drop
}

/// `static native long sealerNew(long key, byte[] context, int segmentSize, boolean
/// withEnvelope)`: a new stream with fresh salt and nonce prefix; `withEnvelope`: format
/// version 2, with the key's envelope and key id (a key a KMS made), else version 1.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_sealerNew<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    key: jlong,
    context: JByteArray<'l>,
    segment_size: jint,
    with_envelope: jboolean,
) -> jlong {
    guard(&mut env, 0, |env| {
        let key = live::<Key>(key, "data key")?;
        let context = env.convert_byte_array(&context)?;
        let segment_size = u32::try_from(segment_size).map_err(|_| invalid("negative segment size"))?;
        let (key_id, envelope) = if with_envelope == JNI_TRUE {
            let envelope = key
                .envelope
                .clone()
                .ok_or_else(|| invalid("the data key has no envelope (no KMS made it)"))?;
            (KeyId(key.key_id), Some(envelope))
        } else {
            (KeyId::NONE, None)
        };
        let params = StreamParams { segment_size, key_id, envelope, ..StreamParams::default() };
        let encryptor = Encryptor::new(&key.key, &params, &context, random()?, random()?)?;
        Ok(into_handle(Sealer(encryptor)))
    })
}

/// `static native byte[] sealerHeader(long sealer)`: the header to write first.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_sealerHeader<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    sealer: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let sealer = live::<Sealer>(sealer, "sealed output stream")?;
        Ok(env.byte_array_from_slice(sealer.0.header().as_bytes())?.into_raw())
    })
}

/// `static native int seal(long sealer, long index, boolean last, byte[] buf, int
/// plaintextLen)`: seals segment `index` in place (`buf` has room for the 16-byte tag);
/// returns the sealed length.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_seal<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    sealer: jlong,
    index: jlong,
    last: jboolean,
    buf: JByteArray<'l>,
    plaintext_len: jint,
) -> jint {
    guard(&mut env, -1, |env| {
        let sealer = live::<Sealer>(sealer, "sealed output stream")?;
        let index = u64::try_from(index).map_err(|_| invalid("negative segment index"))?;
        let len = usize::try_from(plaintext_len).map_err(|_| invalid("negative plaintext length"))?;
        let sealed =
            with_bytes_mut(env, &buf, |bytes| sealer.0.seal_in_place(index, last == JNI_TRUE, bytes, len))??;
        Ok(sealed as jint)
    })
}

/// `static native void sealerFree(long sealer)`.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_sealerFree<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    sealer: jlong,
) {
    release::<Sealer>(&mut env, sealer)
}

/// `static native int declaredHeaderLen(byte[] start, int len)`: how many bytes the
/// header at the start of a stream needs (read up to 72 first; a version-2 header may
/// need more). Never fails on the bytes themselves: `openerNew` judges them.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_declaredHeaderLen<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    start: JByteArray<'l>,
    len: jint,
) -> jint {
    guard(&mut env, -1, |env| Ok(Header::declared_len(&prefix(env, &start, len)?) as jint))
}

/// `static native byte[] headerEnvelope(byte[] start, int len)`: the key envelope of a
/// version-2 header (what the KMS unwraps), or null for version 1.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_headerEnvelope<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    start: JByteArray<'l>,
    len: jint,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let header = Header::parse(&prefix(env, &start, len)?)?;
        match header.envelope() {
            None => Ok(std::ptr::null_mut()),
            Some(e) => Ok(env.byte_array_from_slice(e)?.into_raw()),
        }
    })
}

/// `static native byte[] headerKeyId(byte[] start, int len)`: the 16-byte key id.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_headerKeyId<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    start: JByteArray<'l>,
    len: jint,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let header = Header::parse(&prefix(env, &start, len)?)?;
        Ok(env.byte_array_from_slice(&header.key_id().0)?.into_raw())
    })
}

/// `static native long openerNew(long key, byte[] start, int len, byte[] context)`:
/// parses the header in `start[..len]` and derives the stream key.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_openerNew<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    key: jlong,
    start: JByteArray<'l>,
    len: jint,
    context: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let key = live::<Key>(key, "data key")?;
        let start = prefix(env, &start, len)?;
        let context = env.convert_byte_array(&context)?;
        Ok(into_handle(Opener(Decryptor::new(&key.key, &start, &context)?)))
    })
}

/// `static native long openerLayout(long opener)`: segment size (high 32 bits) and
/// header length (low 32 bits).
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_openerLayout<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    opener: jlong,
) -> jlong {
    guard(&mut env, 0, |_| {
        let layout = live::<Opener>(opener, "sealed input stream")?.0.layout();
        Ok(((layout.segment_size() as jlong) << 32) | layout.header_len() as jlong)
    })
}

/// `static native int open(long opener, long index, boolean last, byte[] buf, int
/// sealedLen)`: opens segment `index` (`buf[..sealedLen]`, ciphertext and tag) in place;
/// returns the plaintext length. On failure `buf` holds no plaintext.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_open<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    opener: jlong,
    index: jlong,
    last: jboolean,
    buf: JByteArray<'l>,
    sealed_len: jint,
) -> jint {
    guard(&mut env, -1, |env| {
        let opener = live::<Opener>(opener, "sealed input stream")?;
        let index = u64::try_from(index).map_err(|_| invalid("negative segment index"))?;
        let len = usize::try_from(sealed_len).map_err(|_| invalid("negative segment length"))?;
        let opened = with_bytes_mut(env, &buf, |bytes| match bytes.get_mut(..len) {
            Some(segment) => opener.0.open_in_place(index, last == JNI_TRUE, segment).map_err(Fail::from),
            None => Err(invalid("segment length beyond the array")),
        })??;
        Ok(opened as jint)
    })
}

/// `static native void openerFree(long opener)`.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_openerFree<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    opener: jlong,
) {
    release::<Opener>(&mut env, opener)
}

/// `static native int headerLen(byte[] start, int len)`: the length of the header at the
/// start of `start[..len]` (68, or 72 + envelope length).
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_headerLen<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    start: JByteArray<'l>,
    len: jint,
) -> jint {
    guard(&mut env, -1, |env| Ok(Header::parse(&prefix(env, &start, len)?)?.len() as jint))
}

/// `static native byte[] keyEnvelope(long key)`: the envelope a KMS made with this key, or null.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_keyEnvelope<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    key: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| match &live::<Key>(key, "data key")?.envelope {
        None => Ok(std::ptr::null_mut()),
        Some(e) => Ok(env.byte_array_from_slice(e)?.into_raw()),
    })
}

/// `static native long kmsOpen(String uri)`: opens a KMS (`local:PATH`, `pkcs11:...`).
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_kmsOpen<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    uri: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let uri: String = env.get_string(&uri)?.into();
        Ok(into_handle(KmsHandle(exitless_kms::Kms::open(&uri)?)))
    })
}

/// `static native void kmsFree(long kms)`.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_kmsFree<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    kms: jlong,
) {
    release::<KmsHandle>(&mut env, kms)
}

/// `static native long kmsUnwrap(long kms, byte[] envelope)`: the data key in an envelope.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_kmsUnwrap<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    kms: jlong,
    envelope: JByteArray<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let kms = live::<KmsHandle>(kms, "KMS")?;
        let envelope = env.convert_byte_array(&envelope)?;
        let key = kms.0.unwrap(&envelope)?;
        let key_id = envelope_key_id(&envelope);
        Ok(into_handle(Key { key, key_id, envelope: Some(envelope) }))
    })
}

/// `static native long kmsGenerate(long kms)`: a fresh data key wrapped under the KMS's
/// current key, with its key id and envelope.
#[no_mangle]
pub extern "system" fn Java_io_exitless_spark_NativeSeal_kmsGenerate<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    kms: jlong,
) -> jlong {
    guard(&mut env, 0, |_| {
        let kms = live::<KmsHandle>(kms, "KMS")?;
        let (key, _, envelope) = kms.0.generate_data_key(None)?;
        let key_id = envelope_key_id(&envelope);
        Ok(into_handle(Key { key, key_id, envelope: Some(envelope) }))
    })
}

/// The primary key id in an envelope (docs/KMS.md, `WrappedKey` layout: scheme, then 16
/// bytes of id), which a version-2 header records as its key id, as the Python package does.
fn envelope_key_id(envelope: &[u8]) -> [u8; 16] {
    envelope.get(1..17).and_then(|id| id.try_into().ok()).unwrap_or([0; 16])
}
