//! Opening one segment over arbitrary ciphertext, with a fixed key and context: the
//! streams of test vectors 2 (AES-256-GCM), 3 (ChaCha20-Poly1305) and 5 (version 2).
//!
//! Input: `stream (1) ‖ index (1) ‖ flags (1) ‖ ciphertext ‖ tag`. `stream % 3` picks the
//! vector, [`exitless_fuzz::segment_index`] turns index and flags into the segment index
//! (small ones, or around the 2^32 limit), flag bit 0 is the last-segment flag, and
//! flag bits 2-3 size the output buffer of `open_into`.
//!
//! Checked: `open_in_place` and `open_into` agree; an opened segment re-seals to the
//! exact input (nothing but the one ciphertext opens); a failure leaves no plaintext
//! (the buffer is zeroed, or holds the untouched input); errors have the right class.
#![no_main]

use std::sync::OnceLock;

use exitless_fuzz::{data_key, segment_index, vector_streams, NONCE_PREFIX, SALT};
use exitless_seal::{Decryptor, Encryptor, ErrorKind, TAG_LEN};
use libfuzzer_sys::fuzz_target;

const SENTINEL: u8 = 0xa5;

struct Pair {
    enc: Encryptor,
    dec: Decryptor,
}

fn pairs() -> &'static [Pair] {
    static PAIRS: OnceLock<Vec<Pair>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let key = data_key();
        vector_streams()
            .into_iter()
            .map(|v| {
                let enc = Encryptor::new(&key, &v.params, v.context, SALT, NONCE_PREFIX).expect("encryptor");
                let dec = Decryptor::new(&key, v.header().as_bytes(), v.context).expect("decryptor");
                Pair { enc, dec }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [which, index, flags, ref ct @ ..] = *data else { return };
    let pair = &pairs()[usize::from(which) % 3];
    let index = segment_index(index, flags);
    let last = flags & 1 == 1;
    let capacity = pair.dec.layout().capacity(index);
    let valid_len = ct.len() >= TAG_LEN && {
        let p = ct.len() - TAG_LEN;
        p <= capacity && (last || p == capacity) && (p > 0 || index == 0 || !last)
    };

    // In place.
    let mut buf = ct.to_vec();
    let in_place = pair.dec.open_in_place(index, last, &mut buf);

    // Into a separate buffer, sized by flag bits 2-3.
    let plain_len = ct.len().saturating_sub(TAG_LEN);
    let out_len = match (flags >> 2) & 3 {
        0 => plain_len,
        1 => plain_len.saturating_sub(1),
        2 => ct.len() + 64,
        _ => 0,
    };
    let mut out = vec![SENTINEL; out_len];
    let into = pair.dec.open_into(index, last, ct, &mut out);

    match &in_place {
        Ok(n) => {
            assert!(valid_len, "opened a segment of impossible length {}", ct.len());
            assert_eq!(*n, plain_len);
            assert!(index < 1 << 32);
            // Re-sealing the plaintext gives back exactly the input.
            let mut again = buf[..*n].to_vec();
            again.resize(n + TAG_LEN, 0);
            let sealed = pair.enc.seal_in_place(index, last, &mut again, *n).expect("re-seal");
            assert_eq!(sealed, ct.len());
            assert_eq!(&again[..], ct, "a different ciphertext opened to this plaintext");
        }
        Err(e) => {
            let kind = e.kind();
            if index >= 1 << 32 && valid_len {
                assert_eq!(kind, ErrorKind::InvalidArgument, "{e}");
            } else {
                assert_eq!(kind, ErrorKind::Integrity, "{e}");
            }
            // Zeroed by a failed authentication, or never touched (wrong length).
            let data_part = &buf[..plain_len.min(buf.len())];
            assert!(
                data_part.iter().all(|&b| b == 0) || data_part == &ct[..data_part.len()],
                "a failed open left bytes behind"
            );
        }
    }

    match (&in_place, &into) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(&out[..*b], &buf[..*a], "open_into and open_in_place disagree");
            assert!(out[*b..].iter().all(|&x| x == SENTINEL), "open_into wrote past the plaintext");
        }
        (Ok(_), Err(e)) => {
            assert!(out_len < plain_len, "open_into failed with room for the plaintext: {e}");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
        (Err(a), Ok(_)) => panic!("open_into accepted what open_in_place refused: {a}"),
        (Err(_), Err(_)) => {}
    }
    if into.is_err() {
        // Zeroed, untouched, or the ciphertext copied in before the nonce was refused.
        let clean = out.iter().enumerate().all(|(i, &b)| b == 0 || b == SENTINEL || ct.get(i) == Some(&b));
        assert!(clean, "a failed open_into left bytes behind");
    }
});
