//! Rust objects as Java `long` handles, and Java `byte[]`s as Rust slices.

use jni::objects::{JByteArray, ReleaseMode};
use jni::sys::jlong;
use jni::JNIEnv;

/// Moves `value` to the heap and returns its address for Java to keep.
pub fn into_handle<T>(value: T) -> jlong {
    Box::into_raw(Box::new(value)) as jlong
}

/// Borrows the object behind `handle`, or `None` for 0 (a freed handle).
///
/// # Safety
/// `handle` is 0 or came from [`into_handle::<T>`] and has not been passed to
/// [`free_handle`]; no other thread uses it meanwhile (the crate root's NOTE: the Java
/// owner holds its monitor).
pub unsafe fn borrow<'a, T>(handle: jlong) -> Option<&'a T> {
    // SAFETY: by the caller's contract the pointer is null or a live Box<T>.
    unsafe { (handle as *const T).as_ref() }
}

/// Drops the object behind `handle` (0 is ignored).
///
/// # Safety
/// As [`borrow`], and `handle` is never used again (the Java owner zeroes its field).
pub unsafe fn free_handle<T>(handle: jlong) {
    if handle != 0 {
        // SAFETY: by the caller's contract this is the one live Box<T> at this address.
        drop(unsafe { Box::from_raw(handle as *mut T) });
    }
}

/// Runs `f` on the first `len` bytes of `array` in place, inside a JNI critical region
/// (no copy on HotSpot; the JVM's GC waits meanwhile, so `f` is one segment's AEAD
/// and makes no JNI call). The bytes are written back to the array.
pub fn with_bytes_mut<R>(
    env: &mut JNIEnv<'_>,
    array: &JByteArray<'_>,
    f: impl FnOnce(&mut [u8]) -> R,
) -> jni::errors::Result<R> {
    // SAFETY: `f` makes no JNI call while the critical region is open (it only seals or
    // opens bytes), and the region closes when `elements` drops at the end of this block.
    let mut elements = unsafe { env.get_array_elements_critical(array, ReleaseMode::CopyBack)? };
    let len = elements.len();
    // SAFETY: i8 and u8 have one size and alignment; the slice covers exactly the
    // array's elements, which `elements` keeps valid and exclusive until it drops.
    let bytes = unsafe { std::slice::from_raw_parts_mut(elements.as_mut_ptr().cast::<u8>(), len) };
    Ok(f(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_borrows_what_was_stored_and_frees_it_once() {
        let h = into_handle(vec![1u8, 2, 3]);
        assert_ne!(h, 0);
        // SAFETY: `h` came from into_handle::<Vec<u8>> and is freed only below.
        assert_eq!(unsafe { borrow::<Vec<u8>>(h) }.map(|v| v.len()), Some(3));
        // SAFETY: as above; `h` is not used after this.
        unsafe { free_handle::<Vec<u8>>(h) };
    }

    #[test]
    fn the_zero_handle_is_none_and_freeing_it_is_a_no_op() {
        // SAFETY: 0 is the closed handle, which both accept.
        assert!(unsafe { borrow::<u64>(0) }.is_none());
        // SAFETY: as above.
        unsafe { free_handle::<u64>(0) };
    }
}
