//! Opening a whole sealed stream from arbitrary bytes, with the test vectors' key and
//! one of their contexts. Input: `context (1) ‖ file` (the first byte's low two bits
//! pick the context).
//!
//! Checked: an accepted file is canonical (re-sealing its plaintext with its header's
//! parameters, salt and nonce prefix gives the same bytes), `open_into` and opening
//! segment by segment in reverse agree with `open_to_vec`, errors are `Format` or
//! `Integrity`, and a failed `open_into` leaves no plaintext in its output.
#![no_main]

use exitless_fuzz::{context_of, data_key, params_of};
use exitless_seal::{open_into, open_to_vec, seal_to_vec, Decryptor, ErrorKind, Header, TAG_LEN};
use libfuzzer_sys::fuzz_target;

const SENTINEL: u8 = 0xa5;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else { return };
    let context = context_of(selector);
    let key = data_key();
    let opened = open_to_vec(&key, file, context);

    // open_into with room to spare: same verdict, and nothing left behind on failure.
    let mut out = vec![SENTINEL; file.len()];
    let into = open_into(&key, file, context, &mut out);
    match (&opened, &into) {
        (Ok(p), Ok(n)) => {
            assert_eq!(*n, p.len());
            assert_eq!(&out[..*n], &p[..]);
        }
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
        (a, b) => panic!("open_to_vec {a:?} but open_into {b:?}"),
    }
    if into.is_err() {
        assert!(out.iter().all(|&b| b == 0 || b == SENTINEL), "a failed open left plaintext behind");
    }

    let plaintext = match opened {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e.kind(), ErrorKind::Format | ErrorKind::Integrity), "{e:?}");
            return;
        }
    };

    // Canonical: the plaintext re-seals to exactly the file.
    let header = Header::parse(file).expect("an opened file has a header");
    let salt: [u8; 32] = header.salt().try_into().expect("32 bytes");
    let again = seal_to_vec(
        &exitless_seal::SealSpec {
            key: &key,
            params: &params_of(&header),
            context,
            salt,
            nonce_prefix: header.nonce_prefix(),
        },
        &plaintext,
    )
    .expect("re-seal");
    assert_eq!(again, file, "a non-canonical file opened");

    // Segment by segment, last first (random access): the same plaintext.
    let dec = Decryptor::new(&key, file, context).expect("decryptor");
    let layout = dec.layout();
    let g = dec.geometry(file.len() as u64).expect("geometry");
    assert_eq!(g.plaintext_len, plaintext.len() as u64);
    for index in (0..g.segments).rev() {
        let last = index == g.final_index();
        let len = if last { g.final_len } else { layout.capacity(index) + TAG_LEN };
        let start = layout.offset(index) as usize;
        let mut seg = file[start..start + len].to_vec();
        let n = dec.open_in_place(index, last, &mut seg).expect("a segment of an opened file");
        let from = layout.plaintext_start(index) as usize;
        assert_eq!(&seg[..n], &plaintext[from..from + n]);
    }
});
