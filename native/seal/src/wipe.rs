//! Zeroizing a value that does not zeroize itself (ring's expanded AES and
//! ChaCha keys, for example, have no `Drop` that wipes them).

#![allow(unsafe_code)]

use core::mem::{size_of, ManuallyDrop};
use core::ops::Deref;

/// Owns a `T`; on drop, runs `T`'s destructor and then overwrites the bytes the
/// `T` occupied with zeros, with volatile writes the optimizer cannot remove.
pub(crate) struct Wiped<T>(ManuallyDrop<T>);

impl<T> Wiped<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(ManuallyDrop::new(value))
    }
}

impl<T> Deref for Wiped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Wiped<T> {
    fn drop(&mut self) {
        // SAFETY: `self.0` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.0) };
        let start = (&mut self.0 as *mut ManuallyDrop<T>).cast::<u8>();
        for offset in 0..size_of::<T>() {
            // SAFETY: `start .. start + size_of::<T>()` is the storage of `self.0`, which
            // we own and which is valid for writes (it is a field of `*self`, borrowed
            // mutably). The `T` in it was dropped above, so no live value is clobbered,
            // and `ManuallyDrop` keeps the compiler from dropping it again. Writing
            // bytes needs no alignment. Padding bytes become zero, which is fine: they
            // carry no value.
            unsafe { core::ptr::write_volatile(start.add(offset), 0) };
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::Wiped;

    #[test]
    fn wraps_and_derefs() {
        let w = Wiped::new([7u8; 48]);
        assert_eq!(w[47], 7);
    }

    #[test]
    fn drops_inner_exactly_once() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted(#[allow(dead_code)] u64);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        drop(Wiped::new(Counted(42)));
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
