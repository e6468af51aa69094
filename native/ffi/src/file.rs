//! Sealed files on plain synchronous IO: the writer buffers one segment, seals it
//! in place and writes it at its slot; the reader opens segments on demand, checks
//! the final segment when it opens, and never hands out unauthenticated bytes.
//! (The exit-less io_uring path arrives with the exitless-io and exitless-spill crates.)

use std::fs::{File, OpenOptions};
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use exitless_seal::{
    DataKey, Decryptor, Encryptor, Geometry, Header, Layout, StreamParams, HEADER_LEN, TAG_LEN,
};
use zeroize::Zeroizing;

use crate::status::{FfiError, FfiResult, EXITLESS_ERR_CLOSED, EXITLESS_ERR_INTEGRITY};

/// Fresh salt and nonce prefix from the OS.
fn fresh_randomness() -> FfiResult<([u8; 32], [u8; 7])> {
    let mut salt = [0u8; 32];
    let mut prefix = [0u8; 7];
    getrandom::getrandom(&mut salt)
        .and_then(|()| getrandom::getrandom(&mut prefix))
        .map_err(|e| FfiError::invalid(format!("no randomness from the OS: {e}")))?;
    Ok((salt, prefix))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    Failed,
    Finished,
}

/// Writes one sealed stream to a file.
pub(crate) struct SealedWriter {
    file: File,
    path: String,
    enc: Encryptor,
    layout: Layout,
    /// The slot being filled: for segment 0 the header, then plaintext.
    slot: Zeroizing<Vec<u8>>,
    /// Plaintext bytes in `slot`.
    filled: usize,
    index: u64,
    written: u64,
    sync: bool,
    state: WriterState,
}

impl SealedWriter {
    pub(crate) fn create(
        path: &str,
        key: &DataKey,
        params: &StreamParams,
        context: &[u8],
        sync: bool,
    ) -> FfiResult<Self> {
        let (salt, prefix) = fresh_randomness()?;
        let enc = Encryptor::new(key, params, context, salt, prefix).map_err(|e| FfiError::seal(&e, path))?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| FfiError::io(&e, "cannot create", path))?;
        let layout = enc.layout();
        let mut slot = Zeroizing::new(vec![0u8; layout.segment_size() as usize]);
        slot[..HEADER_LEN].copy_from_slice(enc.header().as_bytes());
        Ok(Self {
            file,
            path: path.into(),
            enc,
            layout,
            slot,
            filled: 0,
            index: 0,
            written: 0,
            sync,
            state: WriterState::Open,
        })
    }

    fn base(&self) -> usize {
        if self.index == 0 {
            HEADER_LEN
        } else {
            0
        }
    }

    fn check_open(&self) -> FfiResult {
        match self.state {
            WriterState::Open => Ok(()),
            WriterState::Failed => Err(FfiError::new(
                EXITLESS_ERR_CLOSED,
                format!("{}: an earlier write failed; the stream is incomplete", self.path),
            )),
            WriterState::Finished => {
                Err(FfiError::new(EXITLESS_ERR_CLOSED, format!("{}: writer is closed", self.path)))
            }
        }
    }

    /// Appends plaintext. A full segment is sealed only once more data follows it,
    /// because the final segment must carry the last flag.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> FfiResult {
        self.check_open()?;
        while !data.is_empty() {
            let capacity = self.layout.capacity(self.index);
            if self.filled == capacity {
                self.flush_segment(false)?;
                continue;
            }
            let n = data.len().min(capacity - self.filled);
            let at = self.base() + self.filled;
            self.slot[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            self.written += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn flush_segment(&mut self, last: bool) -> FfiResult {
        let base = self.base();
        let result = self
            .enc
            .seal_in_place(self.index, last, &mut self.slot[base..], self.filled)
            .map_err(|e| FfiError::seal(&e, &self.path))
            .and_then(|sealed| {
                // Segment 0 goes out together with the header in front of it.
                let offset = if self.index == 0 { 0 } else { self.layout.offset(self.index) };
                self.file.write_all_at(&self.slot[..base + sealed], offset).map_err(|e| {
                    FfiError::io(&e, &format!("cannot write segment {} of", self.index), &self.path)
                })
            });
        if let Err(e) = result {
            self.state = WriterState::Failed;
            return Err(e);
        }
        self.index += 1;
        self.filled = 0;
        Ok(())
    }

    /// Seals the final segment, writes it and (if asked) syncs. After an error the
    /// file is left incomplete, so it never reads back as a whole stream.
    pub(crate) fn finish(&mut self) -> FfiResult {
        self.check_open()?;
        self.flush_segment(true)?;
        if self.sync {
            if let Err(e) = self.file.sync_all() {
                self.state = WriterState::Failed;
                return Err(FfiError::io(&e, "cannot sync", &self.path));
            }
        }
        self.state = WriterState::Finished;
        Ok(())
    }

    /// Plaintext bytes accepted so far.
    pub(crate) fn position(&self) -> u64 {
        self.written
    }
}

/// Reads one sealed stream from a file, with random access.
pub(crate) struct SealedReader {
    file: File,
    path: String,
    dec: Decryptor,
    layout: Layout,
    geometry: Geometry,
    pos: u64,
    /// Plaintext of the segment in `cache_index` (authenticated), `cache_len` bytes.
    cache: Zeroizing<Vec<u8>>,
    cache_index: Option<u64>,
    cache_len: usize,
}

impl SealedReader {
    pub(crate) fn open(path: &str, key: &DataKey, context: &[u8]) -> FfiResult<Self> {
        let file = File::open(path).map_err(|e| FfiError::io(&e, "cannot open", path))?;
        let file_len = file.metadata().map_err(|e| FfiError::io(&e, "cannot stat", path))?.len();
        let mut start = [0u8; HEADER_LEN];
        let got = read_at_most(&file, &mut start, 0)
            .map_err(|e| FfiError::io(&e, "cannot read header of", path))?;
        let dec = Decryptor::new(key, &start[..got], context).map_err(|e| FfiError::seal(&e, path))?;
        let geometry = dec.geometry(file_len).map_err(|e| FfiError::seal(&e, path))?;
        let layout = dec.layout();
        // The segment size comes from the (not yet authenticated) header: never
        // allocate more than the file can hold.
        let cache_len = (layout.segment_size() as u64).min(file_len) as usize;
        let cache = Zeroizing::new(vec![0u8; cache_len]);
        let mut reader = Self {
            file,
            path: path.into(),
            dec,
            layout,
            geometry,
            pos: 0,
            cache,
            cache_index: None,
            cache_len: 0,
        };
        // Check the end first: truncation is reported before any plaintext is released.
        reader.load(geometry.final_index()).map_err(|mut e| {
            if e.status == EXITLESS_ERR_INTEGRITY && geometry.segments > 1 {
                e.message.push_str(" (the stream may be truncated)");
            }
            e
        })?;
        Ok(reader)
    }

    fn load(&mut self, index: u64) -> FfiResult {
        if self.cache_index == Some(index) {
            return Ok(());
        }
        self.cache_index = None;
        let last = index == self.geometry.final_index();
        let len = if last { self.geometry.final_len } else { self.layout.capacity(index) + TAG_LEN };
        let buf = &mut self.cache[..len];
        let got = read_at_most(&self.file, buf, self.layout.offset(index))
            .map_err(|e| FfiError::io(&e, &format!("cannot read segment {index} of"), &self.path))?;
        if got < len {
            return Err(FfiError::new(
                EXITLESS_ERR_INTEGRITY,
                format!("{}: segment {index}: truncated: the file shrank while open", self.path),
            ));
        }
        let n = self.dec.open_in_place(index, last, buf).map_err(|e| FfiError::seal(&e, &self.path))?;
        self.cache_index = Some(index);
        self.cache_len = n;
        Ok(())
    }

    /// Reads up to `out.len()` bytes at the current position; 0 at end of stream.
    /// On error the position is unchanged and `out` holds nothing from this call.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> FfiResult<usize> {
        let start = self.pos;
        let mut done = 0;
        while done < out.len() && self.pos < self.geometry.plaintext_len {
            let (index, offset) = self.layout.locate(self.pos);
            if let Err(e) = self.load(index) {
                out[..done].fill(0);
                self.pos = start;
                return Err(e);
            }
            let n = (self.cache_len - offset).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.cache[offset..offset + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(done)
    }

    /// Moves the position like lseek: `whence` 0 = start, 1 = current, 2 = end.
    pub(crate) fn seek(&mut self, offset: i64, whence: i32) -> FfiResult<u64> {
        let base = match whence {
            0 => 0i128,
            1 => self.pos as i128,
            2 => self.geometry.plaintext_len as i128,
            _ => return Err(FfiError::invalid(format!("invalid whence {whence} (use 0, 1 or 2)"))),
        };
        let target = base + offset as i128;
        if target < 0 || target > i64::MAX as i128 {
            return Err(FfiError::invalid(format!("{}: negative seek position {target}", self.path)));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }

    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    pub(crate) fn plaintext_len(&self) -> u64 {
        self.geometry.plaintext_len
    }
}

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
    let (salt, prefix) = fresh_randomness()?;
    exitless_seal::seal_into(key, params, context, salt, prefix, plaintext, out)
        .map_err(|e| FfiError::seal(&e, "<buffer>"))
}

/// Opens a whole sealed buffer into `out`.
pub(crate) fn open_into(key: &DataKey, context: &[u8], sealed: &[u8], out: &mut [u8]) -> FfiResult<usize> {
    exitless_seal::open_into(key, sealed, context, out).map_err(|e| FfiError::seal(&e, "<buffer>"))
}
