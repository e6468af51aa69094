//! Untrusted memory: outside the enclave, readable and writable by the host kernel.
//!
//! In Occlum this memory comes from `sgx-untrusted-alloc`, handed in as a raw
//! pointer with [`UntrustedRegion::from_raw_parts`] (core + alloc); with `std`,
//! [`UntrustedRegion::new`] makes an anonymous mapping of its own, page-aligned (so
//! O_DIRECT works). The type hands out no Rust references into the region: bytes go
//! in and out only through copies, because a hostile host may change untrusted
//! memory at any time, and a reference would let code read the same bytes twice and
//! see different values.

use alloc::boxed::Box;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Alignment of every region and of every slot carved from one.
pub const PAGE: usize = 4096;

/// Regions alive in this process, and their bytes (see [`live`]).
static LIVE_REGIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Untrusted regions alive in this process and the bytes they hold: `(regions,
/// bytes)`. Every backend buffer is one; leak checks expect zero once every stream
/// is closed and the backend pool is released.
pub fn live() -> (usize, usize) {
    (LIVE_REGIONS.load(Relaxed), LIVE_BYTES.load(Relaxed))
}

fn count_new(len: usize) {
    LIVE_REGIONS.fetch_add(1, Relaxed);
    LIVE_BYTES.fetch_add(len, Relaxed);
}

/// Gives a foreign region's memory back to its allocator.
type Release = Box<dyn FnOnce(NonNull<u8>, usize) + Send>;

/// Where a region's memory came from, and so how it goes back.
enum Owner {
    /// An anonymous mapping made by [`UntrustedRegion::new`]: unmapped on drop.
    #[cfg(feature = "std")]
    Mapped,
    /// Memory from an allocator ([`UntrustedRegion::from_raw_parts`]); `None` once released.
    Foreign(Option<Release>),
}

/// Bytes of memory that the kernel reads or writes for an IO: an address and a
/// length, handed to a syscall or an io_uring submission, never dereferenced by Rust
/// code. Made from an [`UntrustedRegion`] ([`UntrustedRegion::kernel_addr`]) or from
/// trusted memory the caller lends to one synchronous syscall ([`KernelAddr::lend`]).
/// Holding one is harmless; whoever passes it to the kernel states why the memory
/// is still there when the kernel uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelAddr {
    addr: *mut u8,
    len: usize,
}

impl KernelAddr {
    /// Trusted memory lent to the kernel for one synchronous syscall (the borrow
    /// ends when `buf` is used again, so pass the result straight to the call).
    pub fn lend(buf: &mut [u8]) -> Self {
        Self { addr: buf.as_mut_ptr(), len: buf.len() }
    }

    /// An address the host side was handed (a switchless worker reading its
    /// request); it never becomes a Rust reference either.
    pub fn from_raw(addr: *mut u8, len: usize) -> Self {
        Self { addr, len }
    }

    /// The start address, as the kernel takes it.
    pub fn addr(self) -> *mut u8 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The bytes from `from` on (what is left after a short transfer). Panics if
    /// `from > len` (a bug).
    pub fn skip(self, from: usize) -> Self {
        assert!(from <= self.len, "KernelAddr::skip out of bounds");
        Self { addr: self.addr.wrapping_add(from), len: self.len - from }
    }

    /// The first `len` bytes. Panics if `len` exceeds the range (a bug).
    pub fn prefix(self, len: usize) -> Self {
        assert!(len <= self.len, "KernelAddr::prefix out of bounds");
        Self { addr: self.addr, len }
    }
}

/// A page-aligned region of untrusted memory.
pub struct UntrustedRegion {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
}

// SAFETY: the region is plain memory owned by this value; nothing in it is tied to a
// thread, and a foreign region's release closure is `Send`. Access goes through
// `&mut self` (or raw pointers the owner hands to the kernel), so moving it between
// threads is sound.
unsafe impl Send for UntrustedRegion {}

impl UntrustedRegion {
    /// Maps `len` bytes (rounded up to whole pages), zero-filled.
    #[cfg(feature = "std")]
    pub fn new(len: usize) -> std::io::Result<Self> {
        use std::io;

        let len = len.max(1).div_ceil(PAGE) * PAGE;
        // SAFETY: an anonymous private mapping with no address hint touches no
        // existing memory; the result is checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
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
        count_new(len);
        Ok(Self { ptr, len, owner: Owner::Mapped })
    }

    /// Takes over `len` bytes of untrusted memory at `ptr` that an allocator handed
    /// out (in Occlum: `sgx-untrusted-alloc`); `release(ptr, len)` runs once, when
    /// the region is dropped, to give them back.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes until `release` runs,
    /// and the enclave must not access that memory other than through this region
    /// (the host may: that is what untrusted means, and why the region only copies).
    ///
    /// # Panics
    ///
    /// If `ptr` is not page-aligned, or `len` is not a non-zero multiple of [`PAGE`]
    /// (slots are carved at page boundaries, for O_DIRECT).
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        release: impl FnOnce(NonNull<u8>, usize) + Send + 'static,
    ) -> Self {
        assert!(ptr.as_ptr() as usize % PAGE == 0, "untrusted region is not page-aligned");
        assert!(len > 0 && len % PAGE == 0, "untrusted region length {len} is not a whole number of pages");
        count_new(len);
        Self { ptr, len, owner: Owner::Foreign(Some(Box::new(release))) }
    }

    /// Length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: regions have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of bytes `offset .. offset + len` of the region, for the kernel
    /// to read or write: an IO submission, a buffer registration. A [`KernelAddr`]
    /// is an address and a length, not a reference: Rust code never reads or writes
    /// untrusted memory through it (only [`copy_in`](Self::copy_in),
    /// [`copy_out`](Self::copy_out) and [`zero`](Self::zero) do, each byte once).
    /// Panics if out of bounds (a bug).
    pub fn kernel_addr(&self, offset: usize, len: usize) -> KernelAddr {
        assert!(matches!(offset.checked_add(len), Some(end) if end <= self.len), "kernel_addr out of bounds");
        KernelAddr { addr: self.ptr.as_ptr().wrapping_add(offset), len }
    }

    /// Copies `data` into the region at `offset`. Panics if it does not fit (a bug).
    pub fn copy_in(&mut self, offset: usize, data: &[u8]) {
        assert!(
            matches!(offset.checked_add(data.len()), Some(end) if end <= self.len),
            "copy_in out of bounds"
        );
        // SAFETY: bounds checked above; `data` is trusted memory and cannot overlap a
        // private mapping we own.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len()) };
    }

    /// Fills `len` bytes at `offset` with zeros. Panics if out of bounds (a bug).
    pub fn zero(&mut self, offset: usize, len: usize) {
        assert!(matches!(offset.checked_add(len), Some(end) if end <= self.len), "zero out of bounds");
        // SAFETY: bounds checked above.
        unsafe { core::ptr::write_bytes(self.ptr.as_ptr().add(offset), 0, len) };
    }

    /// Copies `out.len()` bytes from the region at `offset` into trusted `out`,
    /// reading each byte exactly once. Panics if out of bounds (a bug).
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) {
        assert!(
            matches!(offset.checked_add(out.len()), Some(end) if end <= self.len),
            "copy_out out of bounds"
        );
        // SAFETY: bounds checked above; `out` is trusted memory, disjoint from the mapping.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
    }
}

impl Drop for UntrustedRegion {
    fn drop(&mut self) {
        LIVE_REGIONS.fetch_sub(1, Relaxed);
        LIVE_BYTES.fetch_sub(self.len, Relaxed);
        // Owners that lent the memory to the kernel (registered buffers) unregister first.
        match &mut self.owner {
            #[cfg(feature = "std")]
            Owner::Mapped => {
                // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, unmapped once.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Owner::Foreign(release) => {
                if let Some(release) = release.take() {
                    release(self.ptr, self.len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::alloc::{alloc_zeroed, dealloc, Layout};
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A region from the global allocator, standing in for sgx-untrusted-alloc.
    fn foreign(len: usize, released: Arc<AtomicUsize>) -> UntrustedRegion {
        let layout = Layout::from_size_align(len, PAGE).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("allocation");
        // SAFETY: `ptr` is a fresh allocation of `len` bytes that only the region
        // uses, freed (with its layout) by the release closure.
        unsafe {
            let addr = ptr.as_ptr() as usize;
            UntrustedRegion::from_raw_parts(ptr, len, move |p, n| {
                assert_eq!((p.as_ptr() as usize, n), (addr, len));
                released.fetch_add(1, Ordering::SeqCst);
                // SAFETY: allocated above with this layout, released once.
                dealloc(p.as_ptr(), layout);
            })
        }
    }

    #[test]
    fn a_foreign_region_copies_and_is_released_once() {
        let released = Arc::new(AtomicUsize::new(0));
        let mut r = foreign(2 * PAGE, released.clone());
        assert_eq!(r.len(), 2 * PAGE);
        r.copy_in(PAGE - 2, b"abcd");
        let mut out = [0u8; 4];
        r.copy_out(PAGE - 2, &mut out);
        assert_eq!(&out, b"abcd");
        drop(r);
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_foreign_region_must_be_whole_pages() {
        extern crate std;
        let layout = Layout::from_size_align(PAGE, PAGE).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("allocation");
        let refused = std::panic::catch_unwind(|| {
            // SAFETY: as in `foreign`; the constructor panics before taking it over.
            let _ = unsafe { UntrustedRegion::from_raw_parts(ptr, 100, |_, _| {}) };
        });
        let message = refused.expect_err("a region of 100 bytes was accepted");
        let message = message.downcast_ref::<alloc::string::String>().expect("a formatted panic message");
        assert!(message.contains("whole number of pages"), "{message}");
        // SAFETY: allocated above with this layout; the region never took it over.
        // (Before, this test leaked the page; Miri reports leaks.)
        unsafe { dealloc(ptr.as_ptr(), layout) };
    }

    #[cfg(feature = "std")]
    #[test]
    fn copies_in_and_out_page_aligned() {
        let mut r = UntrustedRegion::new(10_000).unwrap();
        assert_eq!(r.len(), 3 * PAGE);
        assert_eq!(r.kernel_addr(0, r.len()).addr() as usize % PAGE, 0);
        r.copy_in(100, b"hello");
        let mut out = [0u8; 5];
        r.copy_out(100, &mut out);
        assert_eq!(&out, b"hello");
        r.zero(100, 5);
        r.copy_out(100, &mut out);
        assert_eq!(out, [0; 5]);
    }

    #[test]
    fn kernel_addresses_stay_inside_the_region() {
        extern crate std;
        let r = foreign(2 * PAGE, Arc::new(AtomicUsize::new(0)));
        let whole = r.kernel_addr(0, 2 * PAGE);
        let tail = r.kernel_addr(PAGE, PAGE);
        assert_eq!(whole.skip(PAGE), tail);
        assert_eq!(tail.prefix(10).len(), 10);
        assert_eq!(whole.addr() as usize % PAGE, 0);
        for (offset, len) in [(2 * PAGE, 1), (1, 2 * PAGE), (usize::MAX, 2)] {
            let refused =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.kernel_addr(offset, len)));
            assert!(refused.is_err(), "kernel_addr({offset}, {len}) was allowed");
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn refuses_out_of_bounds() {
        let mut r = foreign(PAGE, Arc::new(AtomicUsize::new(0)));
        r.copy_in(PAGE - 2, b"abc");
    }
}
