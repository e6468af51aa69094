//! Header parsing (docs/FORMAT.md sections 2 and 9.1) over arbitrary bytes: versions 1
//! and 2. Besides "no panic", every accepted header must be canonical (rebuilt from its
//! fields it is the same bytes), every proper prefix of it must be a truncation
//! (`Integrity`), the reader's two-step header read must reach the same verdict as a
//! parse of the whole input, and the geometry of any file length must be consistent.
#![no_main]

use exitless_seal::{Error, ErrorKind, Header, Layout, HEADER_LEN, MAX_HEADER_LEN, V2_FIXED_LEN};
use libfuzzer_sys::fuzz_target;

/// The outcome of a parse, comparable: the header bytes, or the error class.
fn verdict(r: &Result<Header, Error>) -> Result<&[u8], ErrorKind> {
    r.as_ref().map(Header::as_bytes).map_err(|e| e.kind())
}

fuzz_target!(|data: &[u8]| {
    let parsed = Header::parse(data);

    // The reader's way (exitless-spill `read_header`): the first 72 bytes, then up to
    // the length a version-2 header declares. Same verdict as parsing everything.
    let got = data.len().min(V2_FIXED_LEN);
    let want = Header::declared_len(&data[..got]);
    assert!(want <= MAX_HEADER_LEN);
    let n = if got == V2_FIXED_LEN && want > got { want.min(data.len()) } else { got };
    assert_eq!(verdict(&Header::parse(&data[..n])), verdict(&parsed), "two-step read disagrees");
    // Nothing past the largest header matters.
    if data.len() > MAX_HEADER_LEN {
        assert_eq!(verdict(&Header::parse(&data[..MAX_HEADER_LEN])), verdict(&parsed));
    }

    let h = match parsed {
        Ok(h) => h,
        Err(e) => {
            assert!(matches!(e.kind(), ErrorKind::Format | ErrorKind::Integrity), "{e:?}");
            // An error message never fails to format.
            let _ = e.to_string();
            return;
        }
    };
    let len = h.len();
    assert!(len == HEADER_LEN || (V2_FIXED_LEN + 1..=MAX_HEADER_LEN).contains(&len), "length {len}");
    assert_eq!(h.as_bytes(), &data[..len]);
    assert!(want >= len, "declared length {want} shorter than the header {len}");
    assert_eq!(h.envelope().map_or(0, <[u8]>::len), len.saturating_sub(V2_FIXED_LEN));
    assert_eq!(h.version() == 1, len == HEADER_LEN);
    let _ = format!("{h:?} {}", h.key_id());

    // Canonical: building a header from the parsed fields gives the same bytes.
    let rebuilt = match h.envelope() {
        None => Header::new(h.algorithm(), h.segment_size(), h.key_id(), salt(&h), h.nonce_prefix()),
        Some(e) => {
            Header::with_envelope(h.algorithm(), h.segment_size(), h.key_id(), salt(&h), h.nonce_prefix(), e)
        }
    }
    .expect("an accepted header's fields build a header");
    assert_eq!(rebuilt.as_bytes(), h.as_bytes(), "parse accepted a non-canonical header");
    assert_eq!(Header::parse(h.as_bytes()).expect("reparse").as_bytes(), h.as_bytes());

    // Every proper prefix of a valid header is a truncated header.
    for cut in 0..len {
        let e = Header::parse(&data[..cut]).expect_err("a proper prefix parsed");
        assert_eq!(e.kind(), ErrorKind::Integrity, "prefix of {cut} bytes: {e}");
    }

    // Geometry for this file's length and for an arbitrary one from the bytes after the header.
    let layout = Layout::new(h.segment_size(), len).expect("an accepted header has a layout");
    let mut lengths = vec![data.len() as u64];
    if let Some(b) = data.get(len..len + 8) {
        lengths.push(u64::from_le_bytes(b.try_into().expect("8 bytes")));
    }
    for file_len in lengths {
        match layout.for_file(file_len) {
            Ok(g) => {
                assert!(g.segments >= 1 && g.final_len >= 16);
                assert_eq!(layout.sealed_len(g.plaintext_len).expect("sealed length"), file_len);
                assert_eq!(layout.for_plaintext(g.plaintext_len).expect("geometry"), g);
                let (index, offset) = layout.locate(g.plaintext_len.saturating_sub(1));
                assert!(index <= g.final_index());
                assert!(offset < layout.capacity(index).max(1));
            }
            Err(e) => assert!(matches!(e.kind(), ErrorKind::Format | ErrorKind::Integrity)),
        }
    }
});

fn salt(h: &Header) -> [u8; 32] {
    h.salt().try_into().expect("32-byte salt")
}
