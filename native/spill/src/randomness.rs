//! Fresh randomness for a new stream (its salt and nonce prefix).

use crate::error::{SpillError, SpillResult};

/// A fresh salt and nonce prefix from the OS, for a new stream.
pub fn fresh_randomness() -> SpillResult<([u8; 32], [u8; 7])> {
    let mut salt = [0u8; 32];
    let mut prefix = [0u8; 7];
    getrandom::getrandom(&mut salt).and_then(|()| getrandom::getrandom(&mut prefix)).map_err(|e| {
        SpillError::InvalidArgument {
            path: None,
            message: "no randomness from the OS".into(),
            source: Some(Box::new(
                e.raw_os_error()
                    .map_or_else(|| std::io::Error::other(e.to_string()), std::io::Error::from_raw_os_error),
            )),
        }
    })?;
    Ok((salt, prefix))
}
