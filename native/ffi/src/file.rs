//! Whole buffers sealed in memory. (File streams and key-less inspection live in
//! exitless-spill.)

use exitless_seal::{DataKey, StreamParams};

use crate::status::{FfiError, FfiResult};

/// Seals a whole buffer into `out` with fresh randomness.
pub(crate) fn seal_into(
    key: &DataKey,
    params: &StreamParams,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> FfiResult<usize> {
    let (salt, prefix) = exitless_spill::randomness::fresh_randomness()?;
    exitless_seal::seal_into(
        &exitless_seal::SealSpec { key, params, context, salt, nonce_prefix: prefix },
        plaintext,
        out,
    )
    .map_err(|e| FfiError::seal(&e, "<buffer>"))
}

/// Opens a whole sealed buffer into `out`.
pub(crate) fn open_into(key: &DataKey, context: &[u8], sealed: &[u8], out: &mut [u8]) -> FfiResult<usize> {
    exitless_seal::open_into(key, sealed, context, out).map_err(|e| FfiError::seal(&e, "<buffer>"))
}
