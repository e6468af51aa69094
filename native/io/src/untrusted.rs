//! Untrusted memory: outside the enclave, readable and writable by the host kernel.
//!
//! In Occlum this memory comes from `sgx-untrusted-alloc`; here it is an anonymous
//! mapping of its own, page-aligned (so O_DIRECT works). The type hands out no Rust
//! references into the region: bytes go in and out only through copies, because a
//! hostile host may change untrusted memory at any time, and a reference would let
//! code read the same bytes twice and see different values.

use std::io;
use std::ptr::NonNull;

/// Alignment of every region and of every slot carved from one.
pub const PAGE: usize = 4096;

/// A page-aligned region of untrusted memory.
pub struct UntrustedRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; nothing in it is tied to a
// thread. Access goes through `&mut self` (or raw pointers the owner hands to the
// kernel), so moving it between threads is sound.
unsafe impl Send for UntrustedRegion {}

impl UntrustedRegion {
    /// Maps `len` bytes (rounded up to whole pages), zero-filled.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1).div_ceil(PAGE) * PAGE;
        // SAFETY: an anonymous private mapping with no address hint touches no
        // existing memory; the result is checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }

    /// Length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: regions have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start address, for registering with the kernel.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `data` into the region at `offset`. Panics if it does not fit (a bug).
    pub fn copy_in(&mut self, offset: usize, data: &[u8]) {
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= self.len), "copy_in out of bounds");
        // SAFETY: bounds checked above; `data` is trusted memory and cannot overlap a
        // private mapping we own.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len()) };
    }

    /// Fills `len` bytes at `offset` with zeros. Panics if out of bounds (a bug).
    pub fn zero(&mut self, offset: usize, len: usize) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len), "zero out of bounds");
        // SAFETY: bounds checked above.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), 0, len) };
    }

    /// Copies `out.len()` bytes from the region at `offset` into trusted `out`,
    /// reading each byte exactly once. Panics if out of bounds (a bug).
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) {
        assert!(offset.checked_add(out.len()).is_some_and(|end| end <= self.len), "copy_out out of bounds");
        // SAFETY: bounds checked above; `out` is trusted memory, disjoint from the mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
    }
}

impl Drop for UntrustedRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, unmapped once.
        // Owners that lent it to the kernel (registered buffers) unregister first.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_in_and_out_page_aligned() {
        let mut r = UntrustedRegion::new(10_000).unwrap();
        assert_eq!(r.len(), 3 * PAGE);
        assert_eq!(r.as_ptr() as usize % PAGE, 0);
        r.copy_in(100, b"hello");
        let mut out = [0u8; 5];
        r.copy_out(100, &mut out);
        assert_eq!(&out, b"hello");
        r.zero(100, 5);
        r.copy_out(100, &mut out);
        assert_eq!(out, [0; 5]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn refuses_out_of_bounds() {
        let mut r = UntrustedRegion::new(PAGE).unwrap();
        r.copy_in(PAGE - 2, b"abc");
    }
}
