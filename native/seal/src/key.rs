//! Data keys: 32 secret bytes that never print and are wiped on drop.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// Length of a data key in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte data key. `Debug` hides the bytes; dropping zeroizes them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// Takes a copy of exactly 32 key bytes. The caller should wipe its own copy.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; KEY_LEN] =
            bytes.try_into().map_err(|_| Error::invalid("a data key must be exactly 32 bytes"))?;
        Ok(Self(bytes))
    }

    /// Takes ownership of the key bytes.
    pub const fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for key derivation and for handing to a KMS. Do not log them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<secret>)")
    }
}
