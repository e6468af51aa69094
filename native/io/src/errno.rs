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
pub const ENOENT: i32 = 2;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const ENOTDIR: i32 = 20;
pub const EISDIR: i32 = 21;
pub const ENFILE: i32 = 23;
pub const EMFILE: i32 = 24;
pub const ETXTBSY: i32 = 26;
pub const EMLINK: i32 = 31;
pub const ENAMETOOLONG: i32 = 36;
pub const ELOOP: i32 = 40;
pub const EOVERFLOW: i32 = 75;

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
            (super::ENOENT, libc::ENOENT),
            (super::EBUSY, libc::EBUSY),
            (super::EEXIST, libc::EEXIST),
            (super::ENODEV, libc::ENODEV),
            (super::ENOTDIR, libc::ENOTDIR),
            (super::EISDIR, libc::EISDIR),
            (super::ENFILE, libc::ENFILE),
            (super::EMFILE, libc::EMFILE),
            (super::ETXTBSY, libc::ETXTBSY),
            (super::EMLINK, libc::EMLINK),
            (super::ENAMETOOLONG, libc::ENAMETOOLONG),
            (super::ELOOP, libc::ELOOP),
            (super::EOVERFLOW, libc::EOVERFLOW),
        ];
        for (ours, theirs) in ours_and_libc {
            assert_eq!(ours, theirs);
        }
    }
}
