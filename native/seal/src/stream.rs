//! Sealing and opening one segment at a time (docs/FORMAT.md, sections 3–5).
//!
//! Both directions work in place on a buffer the caller owns. That buffer must be
//! trusted memory: while sealing it holds plaintext, and while opening the bytes
//! must not change between authentication and decryption. Ciphertext in untrusted
//! memory is brought in with [`Decryptor::open_into`], which copies it exactly once
//! (no double fetch); sealed output goes out with one copy after sealing.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::header::{Algorithm, Header, KeyId, HEADER_LEN, NONCE_PREFIX_LEN, SALT_LEN, V2_FIXED_LEN};
use crate::key::DataKey;
use crate::layout::{Geometry, Layout, MAX_SEGMENTS, TAG_LEN};
use crate::provider::{hkdf_sha256, NonceBytes, SegmentAead};

/// The HKDF info label (FORMAT.md section 3).
pub const KDF_LABEL: &[u8] = b"exitless stream v1";

/// What a writer chooses per stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamParams {
    /// Segment AEAD.
    pub algorithm: Algorithm,
    /// Ciphertext segment size `S` (default 64 KiB).
    pub segment_size: u32,
    /// Key id recorded in the header (with an envelope: the id of the KMS key that
    /// wrapped the data key).
    pub key_id: KeyId,
    /// `Some`: write format version 2 with this key envelope (1 to 1024 bytes, the
    /// KMS's wrapped data key) in the header. `None`: version 1.
    pub envelope: Option<Vec<u8>>,
}

impl Default for StreamParams {
    fn default() -> Self {
        Self { algorithm: Algorithm::Aes256Gcm, segment_size: 65536, key_id: KeyId::NONE, envelope: None }
    }
}

impl StreamParams {
    /// The length of the header these parameters produce: 68, or 72 + envelope length.
    pub fn header_len(&self) -> usize {
        self.envelope.as_ref().map_or(HEADER_LEN, |e| V2_FIXED_LEN + e.len())
    }

    /// The segment layout of streams written with these parameters.
    pub fn layout(&self) -> Result<Layout> {
        Layout::new(self.segment_size, self.header_len())
    }

    fn header(&self, salt: [u8; SALT_LEN], nonce_prefix: [u8; NONCE_PREFIX_LEN]) -> Result<Header> {
        match &self.envelope {
            None => Header::new(self.algorithm, self.segment_size, self.key_id, salt, nonce_prefix),
            Some(e) => {
                Header::with_envelope(self.algorithm, self.segment_size, self.key_id, salt, nonce_prefix, e)
            }
        }
    }
}

/// The per-stream key and nonce prefix: what both directions share.
struct StreamKey {
    aead: SegmentAead,
    prefix: [u8; NONCE_PREFIX_LEN],
    layout: Layout,
}

impl StreamKey {
    fn derive(key: &DataKey, header: &Header, context: &[u8]) -> Result<Self> {
        let okm = hkdf_sha256(key.expose_secret(), header.salt(), &[KDF_LABEL, header.as_bytes(), context]);
        Ok(Self {
            aead: SegmentAead::new(header.algorithm(), &okm),
            prefix: header.nonce_prefix(),
            layout: Layout::new(header.segment_size(), header.len())?,
        })
    }

    fn nonce(&self, index: u64, last: bool) -> Result<NonceBytes> {
        if index >= MAX_SEGMENTS {
            return Err(Error::invalid("segment index beyond 2^32 - 1").at_segment(index));
        }
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&(index as u32).to_be_bytes());
        n[11] = u8::from(last);
        Ok(n)
    }
}

/// Seals the segments of one stream.
///
/// # The STREAM rule
/// Every segment's nonce is the stream's nonce prefix, its index and the last flag,
/// under a key derived for this stream alone. Sealing two different plaintexts at
/// one index (or one index both as last and not last) reuses a nonce under one
/// key, which gives away their XOR and, for AES-GCM, the authentication key. So
/// seal each index once: a writer seals 0, 1, 2, … in order and the final one with
/// `last`, as [`seal_into`] and exitless-spill's writer do. The type does not track
/// indexes (parallel writers seal different indexes at once, out of order); a new
/// [`Encryptor`] with fresh salt and nonce prefix is a new stream, free of the old
/// one's indexes.
pub struct Encryptor {
    key: StreamKey,
    header: Header,
}

impl Encryptor {
    /// Starts a stream. `salt` and `nonce_prefix` must be fresh random bytes for
    /// every stream; `context` binds the stream to its role (the reader must pass
    /// the same bytes).
    pub fn new(
        key: &DataKey,
        params: &StreamParams,
        context: &[u8],
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        let header = params.header(salt, nonce_prefix)?;
        Ok(Self { key: StreamKey::derive(key, &header, context)?, header })
    }

    /// The header to write at offset 0.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The stream's segment geometry.
    pub fn layout(&self) -> Layout {
        self.key.layout
    }

    /// Seals segment `index` in place: `buf[..plaintext_len]` holds the plaintext;
    /// on return `buf[..plaintext_len + 16]` holds ciphertext ‖ tag, which goes at
    /// [`Layout::offset`]`(index)`. Returns the sealed length.
    ///
    /// A segment that is not `last` must be full; the final segment must hold at
    /// least one byte unless it is segment 0 (the empty stream). Seal each index of
    /// a stream once ([the STREAM rule](Encryptor#the-stream-rule)).
    pub fn seal_in_place(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
        plaintext_len: usize,
    ) -> Result<usize> {
        let capacity = self.key.layout.capacity(index);
        if plaintext_len > capacity {
            return Err(Error::invalid("plaintext larger than the segment's capacity").at_segment(index));
        }
        if !last && plaintext_len != capacity {
            return Err(Error::invalid("only the final segment may be short").at_segment(index));
        }
        if last && plaintext_len == 0 && index != 0 {
            return Err(
                Error::invalid("an empty final segment is only allowed as segment 0").at_segment(index)
            );
        }
        let sealed = plaintext_len + TAG_LEN;
        if buf.len() < sealed {
            return Err(Error::invalid("buffer has no room for the tag").at_segment(index));
        }
        let nonce = self.key.nonce(index, last)?;
        self.key.aead.seal(&nonce, buf, plaintext_len).map_err(|e| e.at_segment(index))?;
        Ok(sealed)
    }
}

/// Opens the segments of one stream, in any order.
pub struct Decryptor {
    key: StreamKey,
    header: Header,
}

impl Decryptor {
    /// Parses the header at the start of `file_start` and derives the stream key.
    pub fn new(key: &DataKey, file_start: &[u8], context: &[u8]) -> Result<Self> {
        let header = Header::parse(file_start)?;
        Ok(Self { key: StreamKey::derive(key, &header, context)?, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The stream's segment geometry.
    pub fn layout(&self) -> Layout {
        self.key.layout
    }

    /// Where the segments of a file of `file_len` bytes are (fails on truncation).
    pub fn geometry(&self, file_len: u64) -> Result<Geometry> {
        self.key.layout.for_file(file_len)
    }

    /// Opens segment `index` in place: `buf` is exactly its ciphertext ‖ tag. Returns
    /// the plaintext length; the plaintext is `buf[..len]`. On failure `buf` holds no
    /// plaintext.
    pub fn open_in_place(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<usize> {
        let n = self.check_len(index, last, buf.len())?;
        let (data, tag) = buf.split_at_mut(n);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("checked length");
        self.open_detached(index, last, data, &tag)?;
        Ok(n)
    }

    /// Opens segment `index` from `ciphertext` (ciphertext ‖ tag, which may sit in
    /// untrusted memory: it is read exactly once, so it cannot change between
    /// authentication and decryption) into `out[..len]`, returning `len`. `out`
    /// needs only the plaintext's room; on failure it holds no plaintext.
    pub fn open_into(&self, index: u64, last: bool, ciphertext: &[u8], out: &mut [u8]) -> Result<usize> {
        let n = self.check_len(index, last, ciphertext.len())?;
        let out = out.get_mut(..n).ok_or_else(|| {
            Error::invalid("output buffer smaller than the segment's plaintext").at_segment(index)
        })?;
        out.copy_from_slice(&ciphertext[..n]);
        let tag: [u8; TAG_LEN] = ciphertext[n..].try_into().expect("checked length");
        self.open_detached(index, last, out, &tag)?;
        Ok(n)
    }

    fn open_detached(&self, index: u64, last: bool, data: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        let nonce = self.key.nonce(index, last)?;
        self.key.aead.open(&nonce, data, tag).map_err(|e| e.at_segment(index))
    }

    /// The plaintext length of a sealed segment of `sealed_len` bytes, if that length
    /// is possible for segment `index` (FORMAT.md section 4).
    fn check_len(&self, index: u64, last: bool, sealed_len: usize) -> Result<usize> {
        let capacity = self.key.layout.capacity(index);
        match sealed_len.checked_sub(TAG_LEN) {
            Some(p) if p <= capacity && (last || p == capacity) && (p > 0 || index == 0 || !last) => Ok(p),
            _ => Err(Error::integrity("segment has the wrong length").at_segment(index)),
        }
    }
}

/// What sealing a whole buffer takes besides the plaintext: the data key, the
/// stream's parameters, its context and its randomness.
#[derive(Clone, Copy)]
pub struct SealSpec<'a> {
    /// The data key.
    pub key: &'a DataKey,
    /// Algorithm, segment size, key id, envelope.
    pub params: &'a StreamParams,
    /// Binds the stream to its role; the reader passes the same bytes.
    pub context: &'a [u8],
    /// Fresh random bytes for every stream (with `nonce_prefix`): two streams with
    /// the same key, context, salt and prefix share a keystream.
    pub salt: [u8; SALT_LEN],
    /// Fresh random bytes for every stream (see `salt`).
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl core::fmt::Debug for SealSpec<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key prints as its own Debug does (never its bytes).
        f.debug_struct("SealSpec").field("key", self.key).field("params", self.params).finish_non_exhaustive()
    }
}

/// Seals a whole plaintext into `out` as a complete sealed file; returns its length
/// ([`Layout::sealed_len`]). Each segment is sealed in place in `out`, so `out` must be
/// trusted memory.
pub fn seal_into(spec: &SealSpec<'_>, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
    let enc = Encryptor::new(spec.key, spec.params, spec.context, spec.salt, spec.nonce_prefix)?;
    let layout = enc.layout();
    let geometry = layout.for_plaintext(plaintext.len() as u64)?;
    let total = layout.sealed_len(plaintext.len() as u64)? as usize;
    let out = out.get_mut(..total).ok_or(Error::invalid("output buffer smaller than the sealed length"))?;
    out[..layout.header_len()].copy_from_slice(enc.header().as_bytes());
    let mut consumed = 0usize;
    for index in 0..geometry.segments {
        let last = index == geometry.final_index();
        let n = if last { plaintext.len() - consumed } else { layout.capacity(index) };
        let start = layout.offset(index) as usize;
        let slot = &mut out[start..start + n + TAG_LEN];
        slot[..n].copy_from_slice(&plaintext[consumed..consumed + n]);
        enc.seal_in_place(index, last, slot, n)?;
        consumed += n;
    }
    Ok(total)
}

/// Seals a whole plaintext into a new buffer: the complete file.
pub fn seal_to_vec(spec: &SealSpec<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let total = spec.params.layout()?.sealed_len(plaintext.len() as u64)? as usize;
    let mut out = vec![0u8; total];
    seal_into(spec, plaintext, &mut out)?;
    Ok(out)
}

/// Opens a whole sealed file held in memory into `out`; returns the plaintext
/// length. Unless every segment authenticates, returns an error and leaves no
/// plaintext in `out`.
pub fn open_into(key: &DataKey, sealed: &[u8], context: &[u8], out: &mut [u8]) -> Result<usize> {
    let dec = Decryptor::new(key, sealed, context)?;
    let layout = dec.layout();
    let geometry = dec.geometry(sealed.len() as u64)?;
    let total = geometry.plaintext_len as usize;
    let out = out.get_mut(..total).ok_or(Error::invalid("output buffer smaller than the plaintext"))?;
    let mut produced = 0usize;
    for index in 0..geometry.segments {
        let last = index == geometry.final_index();
        let len = if last { geometry.final_len } else { layout.capacity(index) + TAG_LEN };
        let start = layout.offset(index) as usize;
        match dec.open_into(index, last, &sealed[start..start + len], &mut out[produced..]) {
            Ok(n) => produced += n,
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut out[..produced]);
                return Err(e);
            }
        }
    }
    Ok(total)
}

/// Opens a whole sealed file held in memory. Returns nothing unless every segment
/// authenticates.
pub fn open_to_vec(key: &DataKey, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
    let dec = Decryptor::new(key, sealed, context)?;
    let mut out = vec![0u8; dec.geometry(sealed.len() as u64)?.plaintext_len as usize];
    open_into(key, sealed, context, &mut out)?;
    Ok(out)
}
