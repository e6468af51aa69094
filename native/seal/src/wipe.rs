//! Zeroizing a value that does not zeroize itself (ring's expanded AES and
//! ChaCha keys, for example, have no `Drop` that wipes them), and the stack that
//! key-handling frames used ([`scrub_stack`]).

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

/// Bytes of stack [`scrub_stack`] overwrites: well beyond the deepest frames that
/// handle keys (key derivation, opening a stream; the key hygiene test finds their
/// residue within 8 KiB of the entry point).
pub const SCRUB_STACK_BYTES: usize = 64 << 10;

/// Overwrites the [`SCRUB_STACK_BYTES`] of stack below the caller's frame with
/// zeros (volatile writes the optimizer keeps), ~3 µs. Call it after the frames
/// that handled key material have returned: moved-from values (a key, HKDF state,
/// an expanded key schedule built on the stack and moved to the heap) and an
/// AEAD's own spills (ChaCha20 keeps its key block on the stack) are copies no
/// destructor wipes. Best effort: registers, and frames deeper than this, are
/// not covered (docs/HARDENING.md, "Key hygiene").
#[inline(never)]
pub fn scrub_stack() {
    let mut area = core::mem::MaybeUninit::<[u64; SCRUB_STACK_BYTES / 8]>::uninit();
    let words = area.as_mut_ptr().cast::<u64>();
    for i in 0..SCRUB_STACK_BYTES / 8 {
        // SAFETY: `words .. words + SCRUB_STACK_BYTES / 8` is `area`, a local array
        // of that many u64s that nothing else refers to: in bounds, aligned, writable.
        unsafe { words.add(i).write_volatile(0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    core::hint::black_box(&area);
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
