//! One sealed file: POSIX reads, writes and truncations over a sealed stream.
//!
//! A file is *writing* (a stream being appended: sealed segments on the device,
//! the last segment's plaintext in a trusted tail) or *finalized* (a complete
//! stream whose final segment authenticated when it was opened). Appends fill the
//! tail; a full tail is sealed and queued on the device when the next byte
//! arrives, so the final segment is never empty unless the stream is. Overwrites
//! inside the tail change trusted memory only. Anything that would change a sealed
//! segment (an overwrite below the tail, a truncation into sealed data, any write
//! to a finalized file) re-seals the whole file in place under a fresh salt: O(file
//! size), rare for spill files (Spark truncates only when it reverts a failed
//! write). [`finalize`](SealedFile::finalize) seals the tail as the final segment;
//! the owner calls it when the last handle closes and on fsync.

use alloc::vec;
use alloc::vec::Vec;

use exitless_seal::layout::MAX_SEGMENTS;
use exitless_seal::{
    DataKey, Decryptor, Encryptor, Geometry, Layout, StreamParams, HEADER_LEN, MAX_HEADER_LEN,
    NONCE_PREFIX_LEN, SALT_LEN, TAG_LEN,
};
use zeroize::Zeroize;

use crate::device::{FillRandom, SegmentDevice};
use crate::error::Error;

type Result<T> = core::result::Result<T, Error>;

/// One open sealed file over a device. Trusted memory: one segment of scratch, the
/// tail (while writing) and one cached plaintext segment; all wiped on drop.
pub struct SealedFile<D: SegmentDevice> {
    dev: D,
    key: DataKey,
    context: Vec<u8>,
    random: FillRandom,
    state: State,
    /// The last segment opened: (index, plaintext).
    cache: Option<(u64, Vec<u8>)>,
    /// One segment of trusted scratch for sealing and opening.
    scratch: Vec<u8>,
}

// A file is writing or finalized for most of its life: boxing the larger variant
// would only add an allocation per state change.
#[allow(clippy::large_enum_variant)]
enum State {
    Writing(Writer),
    Finalized(Reader),
    /// A rewrite or finalization failed halfway: the host file is in an unknown state.
    Broken,
}

struct Writer {
    enc: Encryptor,
    /// The same stream's opener, to read back sealed segments.
    dec: Decryptor,
    /// Index of the segment the tail will become.
    index: u64,
    /// Plaintext of segment `index`, not sealed yet: 0..=capacity(index) bytes,
    /// empty only when `index` is 0.
    tail: Vec<u8>,
    /// The host file may hold bytes beyond this stream (an older stream was
    /// rewritten): truncate when finalizing.
    trim: bool,
    /// Writes were queued since the last flush.
    queued: bool,
}

struct Reader {
    dec: Decryptor,
    geometry: Geometry,
}

impl<D: SegmentDevice> SealedFile<D> {
    /// A new, empty stream on an empty host file (created or truncated by the
    /// caller). Nothing is written until a segment fills or the file is finalized.
    pub fn create(
        dev: D,
        key: DataKey,
        context: &[u8],
        params: &StreamParams,
        random: FillRandom,
    ) -> Result<Self> {
        let writer = new_writer(&key, context, params, random)?;
        let scratch = vec![0u8; params.segment_size as usize];
        Ok(Self {
            dev,
            key,
            context: context.to_vec(),
            random,
            state: State::Writing(writer),
            cache: None,
            scratch,
        })
    }

    /// Opens an existing host file. A complete stream's final segment is read and
    /// authenticated now, so truncation is reported before any plaintext. An empty
    /// host file is an empty stream being written, with `params`.
    pub fn open(
        mut dev: D,
        key: DataKey,
        context: &[u8],
        params: &StreamParams,
        random: FillRandom,
    ) -> Result<Self> {
        let len = dev.file_len()?;
        if len == 0 {
            return Self::create(dev, key, context, params, random);
        }
        let mut head = vec![0u8; len.min(MAX_HEADER_LEN as u64) as usize];
        if read_full(&mut dev, 0, &mut head)? != head.len() {
            return Err(Error::Truncated);
        }
        let dec = Decryptor::new(&key, &head, context)?;
        let geometry = dec.geometry(len)?;
        let scratch = vec![0u8; dec.layout().segment_size() as usize];
        let mut file = Self {
            dev,
            key,
            context: context.to_vec(),
            random,
            state: State::Finalized(Reader { dec, geometry }),
            cache: None,
            scratch,
        };
        file.load(geometry.final_index())?;
        Ok(file)
    }

    /// Plaintext length.
    pub fn len(&self) -> u64 {
        match &self.state {
            State::Writing(w) => w.enc.layout().plaintext_start(w.index) + w.tail.len() as u64,
            State::Finalized(r) => r.geometry.plaintext_len,
            State::Broken => 0,
        }
    }

    /// Whether the file holds no plaintext.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the stream is complete on the device (its final segment written).
    pub fn is_finalized(&self) -> bool {
        matches!(self.state, State::Finalized(_))
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (counters, tests).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Reads plaintext at `pos` into `buf`; returns the bytes read (0 at or past the end).
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        self.check()?;
        let len = self.len();
        let mut done = 0usize;
        while done < buf.len() && pos + (done as u64) < len {
            let p = pos + done as u64;
            let (index, off) = self.layout().locate(p);
            let in_tail = matches!(&self.state, State::Writing(w) if index == w.index);
            if !in_tail {
                self.load(index)?;
            }
            let seg: &[u8] = match &self.state {
                State::Writing(w) if in_tail => &w.tail,
                _ => &self.cache.as_ref().expect("load fills the cache").1,
            };
            let avail = seg.get(off..).ok_or(Error::Invalid("segment shorter than the stream length"))?;
            let n = avail.len().min(buf.len() - done);
            if n == 0 {
                return Err(Error::Invalid("segment shorter than the stream length"));
            }
            buf[done..done + n].copy_from_slice(&avail[..n]);
            done += n;
        }
        Ok(done)
    }

    /// Writes `data` at `pos` (past the end: the gap reads as zeros); returns `data.len()`.
    pub fn write_at(&mut self, pos: u64, data: &[u8]) -> Result<usize> {
        self.check()?;
        if data.is_empty() {
            return Ok(0);
        }
        let end = pos.checked_add(data.len() as u64).ok_or(Error::TooLarge)?;
        if let State::Finalized(_) = self.state {
            let len = self.len();
            self.rewrite(len, None)?;
        }
        let cur = self.len();
        if pos > cur {
            self.append_zeros(pos - cur)?;
        }
        let cur = self.len();
        if pos < cur {
            let patch = &data[..(end.min(cur) - pos) as usize];
            let State::Writing(w) = &mut self.state else { unreachable!("writing after the rewrite") };
            let tail_start = w.enc.layout().plaintext_start(w.index);
            if pos >= tail_start {
                let at = (pos - tail_start) as usize;
                w.tail[at..at + patch.len()].copy_from_slice(patch);
            } else {
                self.rewrite(cur, Some((pos, patch)))?;
            }
        }
        if end > cur {
            self.append(&data[(cur.max(pos) - pos) as usize..])?;
        }
        Ok(data.len())
    }

    /// Truncates or extends (with zeros) to `new_len` plaintext bytes.
    pub fn set_len(&mut self, new_len: u64) -> Result<()> {
        self.check()?;
        let cur = self.len();
        if new_len == cur {
            return Ok(());
        }
        if let State::Finalized(_) = self.state {
            self.rewrite(new_len.min(cur), None)?;
        }
        let cur = self.len();
        if new_len > cur {
            return self.append_zeros(new_len - cur);
        }
        if new_len < cur {
            let State::Writing(w) = &mut self.state else { unreachable!("writing after the rewrite") };
            let tail_start = w.enc.layout().plaintext_start(w.index);
            if new_len > tail_start || w.index == 0 {
                w.tail.truncate((new_len - tail_start) as usize);
            } else {
                self.rewrite(new_len, None)?;
            }
        }
        Ok(())
    }

    /// Seals the tail as the final segment, waits for every write and trims the host
    /// file: the stream is complete on the device. A later write re-seals the file
    /// under a fresh salt.
    pub fn finalize(&mut self) -> Result<()> {
        match self.state {
            State::Finalized(_) => return Ok(()),
            State::Broken => return Err(Error::Broken),
            State::Writing(_) => {}
        }
        let len = self.len();
        let sealed = self.seal_tail(true);
        let State::Writing(w) = core::mem::replace(&mut self.state, State::Broken) else { unreachable!() };
        sealed?;
        self.dev.flush()?;
        let layout = w.enc.layout();
        if w.trim {
            self.dev.set_len(layout.sealed_len(len)?)?;
        }
        let geometry = layout.for_plaintext(len)?;
        // The tail is the final segment's plaintext: keep it as the cached segment.
        let Writer { dec, index, tail, .. } = w;
        self.cache_put(index, &tail);
        let mut tail = tail;
        tail.zeroize();
        self.state = State::Finalized(Reader { dec, geometry });
        Ok(())
    }

    /// Finalizes, then makes the file durable (fsync).
    pub fn sync(&mut self) -> Result<()> {
        self.finalize()?;
        self.dev.sync()?;
        Ok(())
    }

    fn check(&self) -> Result<()> {
        match self.state {
            State::Broken => Err(Error::Broken),
            _ => Ok(()),
        }
    }

    fn layout(&self) -> Layout {
        match &self.state {
            State::Writing(w) => w.enc.layout(),
            State::Finalized(r) => r.dec.layout(),
            State::Broken => unreachable!("checked before"),
        }
    }

    fn cache_put(&mut self, index: u64, plaintext: &[u8]) {
        let (i, seg) = self.cache.get_or_insert_with(|| (index, Vec::new()));
        *i = index;
        seg.zeroize();
        seg.clear();
        seg.extend_from_slice(plaintext);
    }

    /// Opens sealed segment `index` of the current stream into the cache.
    fn load(&mut self, index: u64) -> Result<()> {
        if matches!(&self.cache, Some((i, _)) if *i == index) {
            return Ok(());
        }
        let (dec, last, sealed_len) = match &mut self.state {
            State::Writing(w) => {
                debug_assert!(index < w.index, "the tail is served from memory");
                if w.queued {
                    self.dev.flush()?;
                    w.queued = false;
                }
                (&w.dec, false, w.enc.layout().capacity(index) + TAG_LEN)
            }
            State::Finalized(r) => {
                let last = index == r.geometry.final_index();
                let n = if last { r.geometry.final_len } else { r.dec.layout().capacity(index) + TAG_LEN };
                (&r.dec, last, n)
            }
            State::Broken => return Err(Error::Broken),
        };
        let n = open_segment(&mut self.dev, dec, index, last, &mut self.scratch[..sealed_len])?;
        let (i, seg) = self.cache.get_or_insert_with(|| (index, Vec::new()));
        *i = index;
        seg.zeroize();
        seg.clear();
        seg.extend_from_slice(&self.scratch[..n]);
        self.scratch[..n].zeroize();
        Ok(())
    }

    /// Appends to the writing stream.
    fn append(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let State::Writing(w) = &mut self.state else { unreachable!("append while writing") };
            let cap = w.enc.layout().capacity(w.index);
            if w.tail.len() == cap {
                self.seal_tail(false)?;
                continue;
            }
            let n = (cap - w.tail.len()).min(data.len());
            w.tail.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    fn append_zeros(&mut self, mut n: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.append(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Seals the tail as segment `index` and queues it; not `last`: the next
    /// segment becomes the (empty) tail.
    fn seal_tail(&mut self, last: bool) -> Result<()> {
        let State::Writing(w) = &mut self.state else { unreachable!("seal while writing") };
        let index = w.index;
        if !last && index + 1 >= MAX_SEGMENTS {
            return Err(Error::TooLarge);
        }
        let layout = w.enc.layout();
        let h = if index == 0 { layout.header_len() } else { 0 };
        let plain = w.tail.len();
        let buf = &mut self.scratch;
        if h > 0 {
            buf[..h].copy_from_slice(w.enc.header().as_bytes());
        }
        buf[h..h + plain].copy_from_slice(&w.tail);
        let sealed = w.enc.seal_in_place(index, last, &mut buf[h..], plain);
        let sealed = match sealed {
            Ok(n) => n,
            Err(e) => {
                buf[h..h + plain].zeroize();
                return Err(e.into());
            }
        };
        let offset = if index == 0 { 0 } else { layout.offset(index) };
        self.dev.write_at(offset, &buf[..h + sealed])?;
        w.queued = true;
        if matches!(&self.cache, Some((i, _)) if *i == index) {
            self.cache = None;
        }
        if !last {
            w.index += 1;
            w.tail.zeroize();
            w.tail.clear();
        }
        Ok(())
    }

    /// Re-seals plaintext `[0, keep)` (with `patch` applied) in place under a fresh
    /// salt: the old stream's segment `i` is read before the new stream's segment
    /// `i` is written (both streams have one layout), so nothing is lost.
    fn rewrite(&mut self, keep: u64, patch: Option<(u64, &[u8])>) -> Result<()> {
        if let State::Writing(w) = &mut self.state {
            if w.queued {
                self.dev.flush()?;
                w.queued = false;
            }
        }
        let old = core::mem::replace(&mut self.state, State::Broken);
        let (old_dec, old_layout) = match &old {
            State::Writing(w) => (&w.dec, w.enc.layout()),
            State::Finalized(r) => (&r.dec, r.dec.layout()),
            State::Broken => return Err(Error::Broken),
        };
        if old_layout.header_len() != HEADER_LEN {
            self.state = old;
            return Err(Error::Invalid("sealedfs rewrites only format version 1 streams"));
        }
        let params = StreamParams {
            algorithm: old_dec.header().algorithm(),
            segment_size: old_layout.segment_size(),
            ..StreamParams::default()
        };
        let mut new = match new_writer(&self.key, &self.context, &params, self.random) {
            Ok(w) => w,
            Err(e) => {
                self.state = old;
                return Err(e);
            }
        };
        new.trim = true;
        self.cache = None;
        self.state = State::Writing(new);
        let result = self.copy_from(&old, keep, patch);
        if result.is_err() {
            self.state = State::Broken;
            self.cache = None;
        }
        result
    }

    fn copy_from(&mut self, old: &State, keep: u64, patch: Option<(u64, &[u8])>) -> Result<()> {
        let mut seg = Vec::new();
        let mut pos = 0u64;
        let mut index = 0u64;
        let result = (|| {
            while pos < keep {
                seg.zeroize();
                seg.clear();
                match old {
                    State::Writing(w) if index == w.index => seg.extend_from_slice(&w.tail),
                    State::Writing(w) => {
                        let n = w.enc.layout().capacity(index) + TAG_LEN;
                        let p = open_segment(&mut self.dev, &w.dec, index, false, &mut self.scratch[..n])?;
                        seg.extend_from_slice(&self.scratch[..p]);
                    }
                    State::Finalized(r) => {
                        let last = index == r.geometry.final_index();
                        let n = if last {
                            r.geometry.final_len
                        } else {
                            r.dec.layout().capacity(index) + TAG_LEN
                        };
                        let p = open_segment(&mut self.dev, &r.dec, index, last, &mut self.scratch[..n])?;
                        seg.extend_from_slice(&self.scratch[..p]);
                    }
                    State::Broken => return Err(Error::Broken),
                }
                self.scratch[..].zeroize();
                if seg.is_empty() {
                    return Err(Error::Invalid("old stream shorter than its length"));
                }
                if let Some((at, bytes)) = patch {
                    let seg_end = pos + seg.len() as u64;
                    let (lo, hi) = (at.max(pos), (at + bytes.len() as u64).min(seg_end));
                    if lo < hi {
                        seg[(lo - pos) as usize..(hi - pos) as usize]
                            .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
                    }
                }
                let take = (seg.len() as u64).min(keep - pos) as usize;
                self.append(&seg[..take])?;
                pos += take as u64;
                index += 1;
            }
            Ok(())
        })();
        seg.zeroize();
        result
    }
}

impl<D: SegmentDevice> Drop for SealedFile<D> {
    fn drop(&mut self) {
        self.scratch.zeroize();
        if let Some((_, seg)) = &mut self.cache {
            seg.zeroize();
        }
        if let State::Writing(w) = &mut self.state {
            w.tail.zeroize();
        }
    }
}

fn new_writer(key: &DataKey, context: &[u8], params: &StreamParams, random: FillRandom) -> Result<Writer> {
    let mut salt = [0u8; SALT_LEN];
    let mut prefix = [0u8; NONCE_PREFIX_LEN];
    random(&mut salt)?;
    random(&mut prefix)?;
    let enc = Encryptor::new(key, params, context, salt, prefix)?;
    let dec = Decryptor::new(key, enc.header().as_bytes(), context)?;
    Ok(Writer { enc, dec, index: 0, tail: Vec::new(), trim: false, queued: false })
}

/// Reads segment `index`'s `buf.len()` sealed bytes into trusted `buf` and opens
/// them in place; returns the plaintext length (plaintext in `buf[..n]`).
fn open_segment<D: SegmentDevice>(
    dev: &mut D,
    dec: &Decryptor,
    index: u64,
    last: bool,
    buf: &mut [u8],
) -> Result<usize> {
    let offset = dec.layout().offset(index);
    if read_full(dev, offset, buf)? != buf.len() {
        return Err(Error::Truncated);
    }
    Ok(dec.open_in_place(index, last, buf)?)
}

fn read_full<D: SegmentDevice>(dev: &mut D, offset: u64, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = dev.read_at(offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}
