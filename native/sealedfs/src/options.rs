//! A sealedfs mount's options, checked (Occlum.json: `mount[].options`).

use alloc::string::String;

use exitless_seal::{Layout, StreamParams, HEADER_LEN};

use crate::error::Error;

/// Where a mount's key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The SGX sealing key of this enclave (MRENCLAVE policy): nothing to configure,
    /// files open only in the same enclave build on the same CPU.
    Sealing,
    /// A key the KMS released to this enclave after remote attestation, which
    /// Occlum's init wrote to `path` inside the enclave's encrypted rootfs (init's
    /// `kms_keys`). Read when the mount first opens or creates a file.
    Kms {
        /// Path of the key file inside the enclave (32 raw bytes or 64 hex digits).
        path: String,
    },
}

impl KeySource {
    /// The name used in Occlum.json (`"key"`) and in key derivation.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sealing => "sealing",
            Self::Kms { .. } => "kms",
        }
    }
}

/// Checked options of one sealedfs mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Where the key comes from.
    pub key: KeySource,
    /// Ciphertext segment size (docs/FORMAT.md), default 64 KiB.
    pub segment_size: u32,
    /// Segment writes in flight per open file, default 8.
    pub queue_depth: u32,
}

/// Default segment size.
pub const DEFAULT_SEGMENT_SIZE: u32 = 65536;
/// Default queue depth.
pub const DEFAULT_QUEUE_DEPTH: u32 = 8;
/// Largest queue depth accepted.
pub const MAX_QUEUE_DEPTH: u32 = 64;
/// Largest segment size accepted for a mount (trusted memory per open file is one
/// segment plus one cached segment).
pub const MAX_MOUNT_SEGMENT_SIZE: u32 = 4 << 20;

impl MountOptions {
    /// Checks options as Occlum.json gives them: `key` is `"sealing"` (default) or
    /// `"kms"` (then `key_path` is required and absolute); sizes in bytes.
    pub fn new(
        key: Option<&str>,
        key_path: Option<&str>,
        segment_size: Option<u64>,
        queue_depth: Option<u32>,
    ) -> Result<Self, Error> {
        let key = match (key.unwrap_or("sealing"), key_path) {
            ("sealing", None) => KeySource::Sealing,
            ("sealing", Some(_)) => return Err(Error::Invalid("key_path is only for \"key\": \"kms\"")),
            ("kms", Some(p)) if p.starts_with('/') => KeySource::Kms { path: p.into() },
            ("kms", _) => return Err(Error::Invalid("\"key\": \"kms\" needs an absolute key_path")),
            _ => return Err(Error::Invalid("sealedfs key must be \"sealing\" or \"kms\"")),
        };
        let segment_size = match segment_size {
            None => DEFAULT_SEGMENT_SIZE,
            Some(s) if s % 4096 == 0 && s > 0 && s <= u64::from(MAX_MOUNT_SEGMENT_SIZE) => s as u32,
            Some(_) => {
                return Err(Error::Invalid(
                    "sealedfs segment_size must be a multiple of 4 KiB, at most 4 MiB",
                ))
            }
        };
        Layout::new(segment_size, HEADER_LEN)?;
        let queue_depth = queue_depth.unwrap_or(DEFAULT_QUEUE_DEPTH);
        if !(1..=MAX_QUEUE_DEPTH).contains(&queue_depth) {
            return Err(Error::Invalid("sealedfs queue_depth must be between 1 and 64"));
        }
        Ok(Self { key, segment_size, queue_depth })
    }

    /// The stream parameters new files get (format version 1, AES-256-GCM).
    pub fn stream_params(&self) -> StreamParams {
        StreamParams { segment_size: self.segment_size, ..StreamParams::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let o = MountOptions::new(None, None, None, None).unwrap();
        assert_eq!(o, MountOptions { key: KeySource::Sealing, segment_size: 65536, queue_depth: 8 });
        let k = MountOptions::new(Some("kms"), Some("/etc/exitless/spill.key"), Some(1 << 20), Some(4));
        assert_eq!(k.unwrap().key, KeySource::Kms { path: "/etc/exitless/spill.key".into() });
        assert!(MountOptions::new(Some("kms"), None, None, None).is_err());
        assert!(MountOptions::new(Some("kms"), Some("relative"), None, None).is_err());
        assert!(MountOptions::new(Some("sealing"), Some("/x"), None, None).is_err());
        assert!(MountOptions::new(Some("plain"), None, None, None).is_err());
        assert!(MountOptions::new(None, None, Some(5000), None).is_err());
        assert!(MountOptions::new(None, None, Some(8 << 20), None).is_err());
        assert!(MountOptions::new(None, None, None, Some(0)).is_err());
        assert!(MountOptions::new(None, None, None, Some(65)).is_err());
    }
}
