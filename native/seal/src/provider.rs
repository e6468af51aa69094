//! The primitives: HKDF-SHA256 and the two segment AEADs, from ring (default),
//! AWS-LC (`aws-lc`, the host build's) or RustCrypto (`pure-rust`, no C compiler).
//! Nothing else in the crate names a crypto library.
//!
//! With several provider features on (Cargo unifies features, so a crate that
//! depends on exitless-seal with its defaults switches `ring` on next to a
//! dependent's `aws-lc`), one `imp` is compiled: `aws-lc` before `ring` before
//! `pure-rust`. The explicit opt-in to the faster host provider wins over the
//! default; the enclave's `pure-rust` is used only alone.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::header::Algorithm;
use crate::layout::TAG_LEN;
use crate::wipe::Wiped;

pub(crate) use imp::NAME;

/// A 12-byte AEAD nonce.
pub(crate) type NonceBytes = [u8; 12];

/// HKDF-SHA256(ikm, salt, info = concatenation of `info`) → 32 bytes.
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    imp::hkdf_sha256(ikm, salt, info, &mut okm);
    okm
}

/// One stream key, expanded for its AEAD; its key schedule is wiped on drop.
pub(crate) struct SegmentAead(Wiped<imp::Key>);

impl SegmentAead {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8; 32]) -> Self {
        Self(Wiped::new(imp::Key::new(algorithm, key)))
    }

    /// Encrypts `buf[..len]` in place and writes the tag to `buf[len..len + 16]`.
    pub(crate) fn seal(&self, nonce: &NonceBytes, buf: &mut [u8], len: usize) -> Result<()> {
        let (data, rest) = buf.split_at_mut(len);
        let tag = self.0.seal(nonce, data)?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        Ok(())
    }

    /// Authenticates and decrypts `data` in place against `tag`. On failure `data`
    /// is zeroed, so no unauthenticated plaintext is ever left behind.
    pub(crate) fn open(&self, nonce: &NonceBytes, data: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        let ok = self.0.open(nonce, data, tag);
        if !ok {
            zeroize::Zeroize::zeroize(data);
            return Err(Error::integrity(
                "authentication failed (tampered, truncated, reordered, or wrong key or context)",
            ));
        }
        Ok(())
    }
}

/// The body shared by the two providers with ring's API (aws-lc-rs mirrors it):
/// `NAME`, `hkdf_sha256` and `Key` with `new` and `seal`; each module adds `open`,
/// whose signature differs between the two.
#[cfg(any(feature = "ring", feature = "aws-lc"))]
macro_rules! ring_style_provider {
    ($krate:ident, $name:literal) => {
        use $krate::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
        use $krate::hkdf;

        use crate::error::{Error, Result};
        use crate::header::Algorithm;
        use crate::layout::TAG_LEN;

        pub(crate) const NAME: &str = $name;

        pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[&[u8]], okm: &mut [u8; 32]) {
            struct Len32;
            impl hkdf::KeyType for Len32 {
                fn len(&self) -> usize {
                    32
                }
            }
            hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
                .extract(ikm)
                .expand(info, Len32)
                .and_then(|okm_| okm_.fill(okm))
                .expect("32 bytes is within HKDF-SHA256's output limit");
        }

        pub(crate) struct Key(LessSafeKey);

        impl Key {
            pub(crate) fn new(algorithm: Algorithm, key: &[u8; 32]) -> Self {
                let alg = match algorithm {
                    Algorithm::Aes256Gcm => &aead::AES_256_GCM,
                    Algorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
                };
                let unbound = UnboundKey::new(alg, key).expect("both algorithms take 32-byte keys");
                Self(LessSafeKey::new(unbound))
            }

            pub(crate) fn seal(&self, nonce: &[u8; 12], data: &mut [u8]) -> Result<[u8; TAG_LEN]> {
                let tag = self
                    .0
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::empty(), data)
                    .map_err(|_| Error::invalid("segment too large for the AEAD"))?;
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                Ok(out)
            }
        }
    };
}

/// AWS-LC: the key schedule lives in its `EVP_AEAD_CTX`, allocated with
/// `OPENSSL_malloc`; dropping the key frees it with `OPENSSL_free`, which cleanses
/// the allocation first (unless the process installs AWS-LC's `OPENSSL_memory_*`
/// allocator hooks, which exitless does not); `Wiped` clears the pointer left here.
/// aws-lc-rs's HKDF `Prk` zeroizes the secret it holds when dropped.
#[cfg(feature = "aws-lc")]
mod imp {
    ring_style_provider!(aws_lc_rs, "aws-lc");

    impl Key {
        pub(crate) fn open(&self, nonce: &[u8; 12], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
            let nonce = Nonce::assume_unique_for_key(*nonce);
            self.0.open_in_place_separate_tag(nonce, Aad::empty(), tag, data).is_ok()
        }
    }
}

#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
mod imp {
    ring_style_provider!(ring, "ring");

    impl Key {
        pub(crate) fn open(&self, nonce: &[u8; 12], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
            let nonce = Nonce::assume_unique_for_key(*nonce);
            self.0.open_in_place_separate_tag(nonce, Aad::empty(), (*tag).into(), data, 0..).is_ok()
        }
    }
}

#[cfg(all(feature = "pure-rust", not(any(feature = "ring", feature = "aws-lc"))))]
mod imp {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::Aes256Gcm;
    use chacha20poly1305::ChaCha20Poly1305;

    use crate::error::{Error, Result};
    use crate::header::Algorithm;
    use crate::layout::TAG_LEN;

    pub(crate) const NAME: &str = "pure-rust";

    pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[&[u8]], okm: &mut [u8; 32]) {
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm)
            .expand_multi_info(info, okm)
            .expect("32 bytes is within HKDF-SHA256's output limit");
    }

    // Inline on purpose: `Wiped` zeroizes the bytes the key occupies, which must not
    // sit behind a Box. One key per stream, so the size does not matter.
    #[allow(clippy::large_enum_variant)]
    pub(crate) enum Key {
        Aes(Aes256Gcm),
        ChaCha(ChaCha20Poly1305),
    }

    impl Key {
        pub(crate) fn new(algorithm: Algorithm, key: &[u8; 32]) -> Self {
            match algorithm {
                Algorithm::Aes256Gcm => Self::Aes(Aes256Gcm::new(key.into())),
                Algorithm::ChaCha20Poly1305 => Self::ChaCha(ChaCha20Poly1305::new(key.into())),
            }
        }

        pub(crate) fn seal(&self, nonce: &[u8; 12], data: &mut [u8]) -> Result<[u8; TAG_LEN]> {
            let tag = match self {
                Self::Aes(k) => k.encrypt_in_place_detached(nonce.into(), b"", data),
                Self::ChaCha(k) => k.encrypt_in_place_detached(nonce.into(), b"", data),
            }
            .map_err(|_| Error::invalid("segment too large for the AEAD"))?;
            Ok(tag.into())
        }

        pub(crate) fn open(&self, nonce: &[u8; 12], data: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
            let tag = aes_gcm::Tag::from(*tag);
            match self {
                Self::Aes(k) => k.decrypt_in_place_detached(nonce.into(), b"", data, &tag),
                Self::ChaCha(k) => k.decrypt_in_place_detached(nonce.into(), b"", data, &tag),
            }
            .is_ok()
        }
    }
}
