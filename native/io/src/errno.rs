//! Linux errno values, as the (host) kernel reports them in io_uring completions.
//!
//! Constants of their own rather than `libc`'s, because the validator must build
//! where `libc` has none (`x86_64-unknown-none`, Occlum's LibOS): the numbers are
//! the Linux ABI's, whatever the enclave side runs on. A test checks them against
//! `libc` on the host.
#![allow(missing_docs)]

pub const EPERM: i32 = 1;
pub const EINTR: i32 = 4;
pub const EIO: i32 = 5;
pub const ENXIO: i32 = 6;
pub const EBADF: i32 = 9;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EINVAL: i32 = 22;
pub const EFBIG: i32 = 27;
pub const ENOSPC: i32 = 28;
pub const ESPIPE: i32 = 29;
pub const EROFS: i32 = 30;
pub const EOPNOTSUPP: i32 = 95;
pub const EDQUOT: i32 = 122;
pub const ECANCELED: i32 = 125;

#[cfg(all(test, feature = "std", target_os = "linux"))]
mod tests {
    #[test]
    fn match_the_hosts_libc() {
        let ours_and_libc = [
            (super::EPERM, libc::EPERM),
            (super::EINTR, libc::EINTR),
            (super::EIO, libc::EIO),
            (super::ENXIO, libc::ENXIO),
            (super::EBADF, libc::EBADF),
            (super::EAGAIN, libc::EAGAIN),
            (super::ENOMEM, libc::ENOMEM),
            (super::EACCES, libc::EACCES),
            (super::EFAULT, libc::EFAULT),
            (super::EINVAL, libc::EINVAL),
            (super::EFBIG, libc::EFBIG),
            (super::ENOSPC, libc::ENOSPC),
            (super::ESPIPE, libc::ESPIPE),
            (super::EROFS, libc::EROFS),
            (super::EOPNOTSUPP, libc::EOPNOTSUPP),
            (super::EDQUOT, libc::EDQUOT),
            (super::ECANCELED, libc::ECANCELED),
        ];
        for (ours, theirs) in ours_and_libc {
            assert_eq!(ours, theirs);
        }
    }
}
