//! Key-less inspection of sealed files, and whole buffers sealed in memory. (File
//! streams live in exitless-spill.)

use std::fs::File;
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::FileExt;

use exitless_seal::{DataKey, Geometry, Header, Layout, StreamParams, HEADER_LEN};

use crate::status::{FfiError, FfiResult};

/// `pread` until `buf` is full or end of file; returns the bytes read. Retries EINTR.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What `inspect` reports about a sealed file, without any key.
pub(crate) struct Inspection {
    pub header: Header,
    pub file_len: u64,
    pub geometry: Geometry,
}

pub(crate) fn inspect(path: &str) -> FfiResult<Inspection> {
    let file = File::open(path).map_err(|e| FfiError::io(&e, "cannot open", path))?;
    let file_len = file.metadata().map_err(|e| FfiError::io(&e, "cannot stat", path))?.len();
    let mut start = [0u8; HEADER_LEN];
    let got =
        read_at_most(&file, &mut start, 0).map_err(|e| FfiError::io(&e, "cannot read header of", path))?;
    let header = Header::parse(&start[..got]).map_err(|e| FfiError::seal(&e, path))?;
    let layout = Layout::new(header.segment_size()).map_err(|e| FfiError::seal(&e, path))?;
    let geometry = layout.for_file(file_len).map_err(|e| FfiError::seal(&e, path))?;
    Ok(Inspection { header, file_len, geometry })
}

/// Seals a whole buffer into `out` with fresh randomness.
pub(crate) fn seal_into(
    key: &DataKey,
    params: &StreamParams,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> FfiResult<usize> {
    let (salt, prefix) = exitless_spill::writer::fresh_randomness()?;
    exitless_seal::seal_into(key, params, context, salt, prefix, plaintext, out)
        .map_err(|e| FfiError::seal(&e, "<buffer>"))
}

/// Opens a whole sealed buffer into `out`.
pub(crate) fn open_into(key: &DataKey, context: &[u8], sealed: &[u8], out: &mut [u8]) -> FfiResult<usize> {
    exitless_seal::open_into(key, sealed, context, out).map_err(|e| FfiError::seal(&e, "<buffer>"))
}
