//! [`LocalKms`] (`local:PATH`): primary keys in the Python package's JSON keyring
//! file (docs/KMS.md, "LocalKms: keyring file"), read with the same checks (owner-only
//! mode, regular file, 16 MiB, format, version, ids, key lengths, uniqueness,
//! `current`), reloaded when another process rewrites or chmods it; wrapping is
//! AES-256-GCM (scheme 1, docs/FORMAT.md section 10.2).
//!
//! This side never writes a keyring: create and rotate them with the Python package
//! (`LocalKms.init`, `create_key`, `rotate`).

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, MutexGuard};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use exitless_seal::DataKey;
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::compat::{fromhex, repr};
use crate::envelope::{hex, WrappedKey, GCM_NONCE_LEN, KEY_ID_LEN, SCHEME_LOCAL_AES_GCM, WRAP_AAD_PREFIX};
use crate::error::{KmsError, Result};
use crate::files::{os_error, read_private_file};
use crate::{random_data_key, KEY_LEN};

/// The keyring's `format` field.
pub const KEYRING_FORMAT: &str = "exitless-kms-keyring";
/// The keyring version this crate reads.
pub const KEYRING_VERSION: u64 = 1;
/// Largest keyring file read (16 MiB).
pub const KEYRING_MAX: u64 = 16 << 20;

type KeyId = [u8; KEY_ID_LEN];
/// A primary key on the heap (never moved once read), wiped on drop.
type PrimaryKey = Box<Zeroizing<[u8; KEY_LEN]>>;

/// What identifies one version of the file (Python's `_file_stamp`).
type Stamp = (u64, u64, u64, i64, i64, i64, i64, u32);

fn stamp(md: &std::fs::Metadata) -> Stamp {
    (md.dev(), md.ino(), md.size(), md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec(), md.mode())
}

struct State {
    keys: HashMap<KeyId, PrimaryKey>,
    current: Option<KeyId>,
    stamp: Stamp,
}

/// A `local:PATH` keyring opened read-only. Primary keys are cached (wiped when
/// replaced or dropped); every operation `lstat`s the file and reloads it if it
/// changed, so a rotation by another process is seen and a keyring chmodded to 0644
/// is refused from the next operation on.
pub struct LocalKms {
    path: String,
    uri: String,
    state: Mutex<State>,
}

impl LocalKms {
    /// Opens the keyring at `path` (made absolute as Python's `os.path.abspath`:
    /// lexically, relative to the working directory) and reads it.
    pub fn open(path: &str) -> Result<Self> {
        let path = crate::compat::abspath(path)
            .map_err(|e| KmsError::Kms(format!("cannot make {} absolute: {e}", repr(path))))?;
        let state = load(&path)?;
        Ok(Self { uri: format!("local:{path}"), path, state: Mutex::new(state) })
    }

    /// The keyring's absolute path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `local:` and the absolute path.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The state, reloaded first if the file changed (Python's `_refresh`). On an
    /// error the previous state is kept (and the next call tries again).
    fn refreshed(&self) -> Result<MutexGuard<'_, State>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // lstat: a symbolic link put in its place is noticed (and refused by the reload).
        let md = match std::fs::symlink_metadata(&self.path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KmsError::Kms(format!("keyring {} disappeared", self.path)));
            }
            Err(e) => return Err(os_error("keyring", &self.path, &e)),
        };
        if stamp(&md) != state.stamp {
            *state = load(&self.path)?;
        }
        Ok(state)
    }

    /// The data key in `envelope` (a serialized `WrappedKey`).
    pub fn unwrap(&self, envelope: &[u8]) -> Result<DataKey> {
        let wk = WrappedKey::from_bytes(envelope)?;
        wk.check_scheme(SCHEME_LOCAL_AES_GCM, &self.uri)?;
        let kid = *wk.primary_key_id();
        let state = self.refreshed()?;
        let Some(primary) = state.keys.get(&kid) else {
            return Err(KmsError::Unwrap(format!(
                "cannot unwrap data key: primary key {} is not in {}",
                hex(&kid),
                self.uri
            )));
        };
        let key = open_scheme1(primary, &kid, wk.wrapped());
        drop(state);
        exitless_seal::scrub_stack();
        key
    }

    /// A fresh random data key wrapped under `key_id`, or under the current primary
    /// key for `None`: (data key, primary key id, envelope bytes).
    pub fn generate_data_key(&self, key_id: Option<KeyId>) -> Result<(DataKey, KeyId, Vec<u8>)> {
        let state = self.refreshed()?;
        let Some(kid) = key_id.or(state.current) else {
            return Err(KmsError::Kms(format!("{} has no primary key yet; call create_key()", self.uri)));
        };
        let Some(primary) = state.keys.get(&kid) else {
            return Err(KmsError::Kms(format!("{} has no primary key {}", self.uri, hex(&kid))));
        };
        let data_key = random_data_key()?;
        let mut nonce = [0u8; GCM_NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| KmsError::Kms(format!("the OS random number generator failed: {e}")))?;
        let wrapped = seal_scheme1(primary, &kid, &nonce, data_key.expose_secret());
        drop(state);
        exitless_seal::scrub_stack();
        let envelope = WrappedKey::new(SCHEME_LOCAL_AES_GCM, kid, wrapped?)?.to_bytes();
        Ok((data_key, kid, envelope))
    }
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalKms({})", self.uri)
    }
}

/// Scheme 1's associated data: "exitless wrap v1" ‖ 01 ‖ primary key id.
fn aad(kid: &KeyId) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[..16].copy_from_slice(WRAP_AAD_PREFIX);
    aad[16] = SCHEME_LOCAL_AES_GCM;
    aad[17..].copy_from_slice(kid);
    aad
}

/// AES-256-GCM under `primary`. AWS-LC keeps the key schedule in a context it
/// cleanses when it frees it (exitless-seal's `provider`).
fn gcm_key(primary: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, primary)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Kms("AES-256-GCM refused a 32-byte key".into()))
}

/// nonce ‖ AES-256-GCM(primary, nonce, data key, AAD): the 60-byte `wrapped`.
pub(crate) fn seal_scheme1(
    primary: &[u8; KEY_LEN],
    kid: &KeyId,
    nonce: &[u8; GCM_NONCE_LEN],
    data_key: &[u8; KEY_LEN],
) -> Result<Vec<u8>> {
    let key = gcm_key(primary)?;
    let mut wrapped = Zeroizing::new(vec![0u8; GCM_NONCE_LEN + KEY_LEN]);
    wrapped[..GCM_NONCE_LEN].copy_from_slice(nonce);
    wrapped[GCM_NONCE_LEN..].copy_from_slice(data_key);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(&aad(kid)[..]),
            &mut wrapped[GCM_NONCE_LEN..],
        )
        .map_err(|_| KmsError::Kms("AES-256-GCM failed to wrap a data key".into()))?;
    // Now ciphertext: no longer secret.
    let mut out = wrapped.to_vec();
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The data key in a scheme 1 `wrapped` (60 bytes; the envelope parser checked the
/// length), or [`KmsError::Unwrap`].
pub(crate) fn open_scheme1(primary: &[u8; KEY_LEN], kid: &KeyId, wrapped: &[u8]) -> Result<DataKey> {
    let key = gcm_key(primary)?;
    let nonce = Nonce::try_assume_unique_for_key(&wrapped[..GCM_NONCE_LEN])
        .map_err(|_| KmsError::Kms("a scheme 1 nonce is 12 bytes".into()))?;
    let mut buf = Zeroizing::new([0u8; KEY_LEN + crate::envelope::GCM_TAG_LEN]);
    buf.copy_from_slice(&wrapped[GCM_NONCE_LEN..]);
    match key.open_in_place(nonce, Aad::from(&aad(kid)[..]), &mut buf[..]) {
        Ok(plain) => DataKey::from_slice(plain).map_err(|_| KmsError::Kms("a data key is 32 bytes".into())),
        Err(_) => Err(KmsError::Unwrap(format!(
            "data key under primary key {} failed authentication (wrong primary key, or the wrapped key was modified)",
            hex(kid)
        ))),
    }
}

/// Reads and parses the keyring at `path` (Python's `_load`).
fn load(path: &str) -> Result<State> {
    let (raw, md) = read_private_file(path, "keyring", KEYRING_MAX, KmsError::KeyringFormat)?;
    let (current, keys) = parse_keyring(&raw, path)?;
    Ok(State { keys, current, stamp: stamp(&md) })
}

/// A parsed JSON document whose strings (the base64 primary keys among them) are
/// wiped when it is dropped.
struct WipedJson(Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// Python's `_describe`: a JSON value for a message, scalars as Python prints them
/// (strings cut to 40 characters), containers by their type only.
fn describe(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".into(),
        Some(Value::Bool(true)) => "True".into(),
        Some(Value::Bool(false)) => "False".into(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n <= 40 {
                repr(s)
            } else {
                let cut: String = s.chars().take(40).collect();
                format!("{}... ({n} characters)", repr(&cut))
            }
        }
        Some(Value::Array(_)) => "a JSON array".into(),
        Some(Value::Object(_)) => "a JSON object".into(),
    }
}

/// Python's `doc.get("version") != 1`, with Python's equality: `1`, `1.0` and `true`
/// all equal 1.
fn is_version_1(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(KEYRING_VERSION) || n.as_f64() == Some(1.0),
        _ => false,
    }
}

/// Python's `base64.b64decode(s, validate=True)` of a 32-byte key: only the base64
/// alphabet and up to two trailing `=`; any trailing bits. `None` for "not valid
/// base64"; the decoded bytes (wiped on drop) otherwise.
fn b64decode(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let mut out = Zeroizing::new(vec![0u8; s.len() / 4 * 3 + 3]);
    let n = ENGINE.decode_slice(s, &mut out[..]).ok()?;
    out.truncate(n);
    Some(out)
}

/// The keyring's current key id and primary keys (Python's `_parse_keyring`, check
/// for check and in the same order).
fn parse_keyring(raw: &[u8], path: &str) -> Result<(Option<KeyId>, HashMap<KeyId, PrimaryKey>)> {
    let bad = |why: String| KmsError::KeyringFormat(format!("keyring {path}: {why}"));
    let text = std::str::from_utf8(raw)
        .map_err(|e| bad(format!("not valid JSON (not UTF-8 at byte {})", e.valid_up_to())))?;
    let doc = WipedJson(serde_json::from_str(text).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            bad("not valid JSON (nested too deeply)".into())
        } else {
            // serde_json's syntax messages name the problem and the position, never
            // the input.
            bad(format!("not valid JSON ({e})"))
        }
    })?);
    let Value::Object(doc_map) = &doc.0 else {
        return Err(bad("not a JSON object".into()));
    };
    if doc_map.get("format").is_some_and(|f| f.as_str() != Some(KEYRING_FORMAT)) {
        return Err(bad(format!("format is not {}", repr(KEYRING_FORMAT))));
    }
    if !is_version_1(doc_map.get("version")) {
        return Err(bad(format!(
            "unsupported version {} (this reader knows {KEYRING_VERSION})",
            describe(doc_map.get("version"))
        )));
    }
    let Some(Value::Array(entries)) = doc_map.get("keys") else {
        return Err(bad("'keys' must be a list".into()));
    };
    let mut keys: HashMap<KeyId, PrimaryKey> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(bad(format!("keys[{i}] is not an object")));
        };
        let kid: Option<KeyId> =
            entry.get("id").and_then(Value::as_str).and_then(fromhex).and_then(|bytes| bytes.try_into().ok());
        let Some(kid) = kid else {
            return Err(bad(format!("keys[{i}]: 'id' must be {} hex digits", 2 * KEY_ID_LEN)));
        };
        if keys.contains_key(&kid) {
            return Err(bad(format!("key id {} appears twice", hex(&kid))));
        }
        // Only checked: Python parses it for list_keys, which this crate does not have.
        if entry.get("created").and_then(Value::as_str).and_then(crate::isotime::fromisoformat).is_none() {
            return Err(bad(format!("key {}: 'created' is not an ISO 8601 time", hex(&kid))));
        }
        let secret = match entry.get("key") {
            Some(Value::String(s)) => b64decode(s),
            _ => Some(Zeroizing::new(Vec::new())),
        };
        let Some(secret) = secret else {
            return Err(bad(format!("key {}: 'key' is not valid base64", hex(&kid))));
        };
        if secret.len() != KEY_LEN {
            return Err(bad(format!(
                "key {}: 'key' must decode to {KEY_LEN} bytes, got {}",
                hex(&kid),
                secret.len()
            )));
        }
        let mut primary: PrimaryKey = Box::new(Zeroizing::new([0u8; KEY_LEN]));
        primary.copy_from_slice(&secret);
        keys.insert(kid, primary);
    }
    // Python's doc.get("current"): a missing field and null are the same.
    let current = match doc_map.get("current") {
        None | Some(Value::Null) => {
            if !keys.is_empty() {
                return Err(bad("'current' is missing".into()));
            }
            None
        }
        Some(cur) => {
            let id: Option<KeyId> = cur.as_str().and_then(fromhex).and_then(|bytes| bytes.try_into().ok());
            match id {
                Some(id) if keys.contains_key(&id) => Some(id),
                _ => {
                    return Err(bad(format!("'current' ({}) is not one of the key ids", describe(Some(cur)))))
                }
            }
        }
    };
    Ok((current, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn unhex(s: &str) -> Vec<u8> {
        fromhex(s).unwrap()
    }

    // docs/FORMAT.md section 10.5, envelope vector 1.
    const PRIMARY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
    const KID: &str = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
    const DATA_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NONCE: &str = "b0b1b2b3b4b5b6b7b8b9babb";
    const ENVELOPE: &str = "01d0d1d2d3d4d5d6d7d8d9dadbdcdddedf003cb0b1b2b3b4b5b6b7b8b9babb72205180e33536c07885b1f4abf5eda965224eec2e9b5c0d33a6ef82a80a01a5a9fe6124ebfb3d2e16efdc46641c7bbc";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn keyring_json(keys: &[(&str, &[u8])], current: &str) -> String {
        let entries: Vec<String> = keys
            .iter()
            .map(|(id, key)| {
                format!(
                    r#"{{"id": "{id}", "created": "2025-01-31T12:00:00.000000Z", "key": "{}"}}"#,
                    b64(key)
                )
            })
            .collect();
        format!(
            r#"{{"format": "exitless-kms-keyring", "version": 1, "current": "{current}", "keys": [{}]}}"#,
            entries.join(", ")
        )
    }

    fn write_keyring(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn vector_keyring(dir: &Path) -> String {
        let p = dir.join("keyring.json");
        write_keyring(&p, &keyring_json(&[(KID, &unhex(PRIMARY))], KID), 0o600);
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn envelope_vector_1() {
        let primary: [u8; 32] = unhex(PRIMARY).try_into().unwrap();
        let kid: KeyId = unhex(KID).try_into().unwrap();
        let dk: [u8; 32] = unhex(DATA_KEY).try_into().unwrap();
        let nonce: [u8; 12] = unhex(NONCE).try_into().unwrap();
        let wrapped = seal_scheme1(&primary, &kid, &nonce, &dk).unwrap();
        let envelope = WrappedKey::new(1, kid, wrapped).unwrap().to_bytes();
        assert_eq!(hex(&envelope), ENVELOPE);

        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open(&vector_keyring(dir.path())).unwrap();
        assert_eq!(kms.unwrap(&unhex(ENVELOPE)).unwrap().expose_secret(), &dk);
    }

    #[test]
    fn generate_then_unwrap_and_every_flipped_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open(&vector_keyring(dir.path())).unwrap();
        let (key, kid, envelope) = kms.generate_data_key(None).unwrap();
        assert_eq!(hex(&kid), KID);
        assert_eq!(envelope.len(), 79);
        assert_eq!(&envelope[..19], &unhex(&format!("01{KID}003c"))[..]);
        assert_eq!(kms.unwrap(&envelope).unwrap().expose_secret(), key.expose_secret());
        let (key2, _, envelope2) = kms.generate_data_key(Some(kid)).unwrap();
        assert_ne!(key2.expose_secret(), key.expose_secret());
        assert_ne!(envelope2[19..31], envelope[19..31], "fresh nonces");
        for bit in 0..envelope.len() * 8 {
            let mut bad = envelope.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match kms.unwrap(&bad) {
                Ok(_) => panic!("bit {bit} flipped still unwraps"),
                // scheme byte and length field: the parser; id: unknown primary key;
                // nonce, ciphertext, tag: authentication.
                Err(KmsError::WrappedKeyFormat(_)) => {
                    assert!(bit < 8 || (17 * 8..19 * 8).contains(&bit), "{bit}")
                }
                Err(KmsError::Unwrap(m)) => {
                    if bit >= 19 * 8 {
                        assert!(m.contains("failed authentication"), "{m}");
                    } else {
                        assert!(m.contains("is not in local:"), "{m}");
                    }
                }
                Err(other) => panic!("bit {bit}: {other:?}"),
            }
        }
        // A scheme 2 envelope is another KMS kind's.
        let mut s2 = vec![2u8];
        s2.extend_from_slice(&kid);
        s2.extend_from_slice(&[0, 40]);
        s2.extend_from_slice(&[0; 40]);
        assert!(
            matches!(kms.unwrap(&s2), Err(KmsError::Unwrap(m)) if m.contains("cannot unwrap (it handles scheme 1"))
        );
        // An unknown key id for generate.
        assert!(
            matches!(kms.generate_data_key(Some([9; 16])), Err(KmsError::Kms(m)) if m.ends_with("has no primary key 09090909090909090909090909090909"))
        );
    }

    #[test]
    fn keyring_mode_is_checked_on_open_and_on_every_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = vector_keyring(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        match LocalKms::open(&path) {
            Err(KmsError::InsecureKeyring(m)) => {
                assert_eq!(
                    m,
                    format!("keyring {path} is accessible by group or others (mode 644); chmod 600 it")
                )
            }
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let kms = LocalKms::open(&path).unwrap();
        let envelope = unhex(ENVELOPE);
        assert!(kms.unwrap(&envelope).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(kms.unwrap(&envelope), Err(KmsError::InsecureKeyring(_))));
        assert!(matches!(kms.generate_data_key(None), Err(KmsError::InsecureKeyring(_))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(kms.unwrap(&envelope).is_ok());
        // Replaced by a symbolic link (to a good keyring): refused.
        let other = dir.path().join("other.json");
        std::fs::rename(&path, &other).unwrap();
        std::os::unix::fs::symlink(&other, &path).unwrap();
        assert!(
            matches!(kms.unwrap(&envelope), Err(KmsError::InsecureKeyring(m)) if m.contains("symbolic link"))
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(kms.unwrap(&envelope), Err(KmsError::Kms(m)) if m.ends_with("disappeared")));
        // Opening: a directory, a missing file, a keyring over 16 MiB (not read).
        assert!(matches!(LocalKms::open(dir.path().to_str().unwrap()), Err(KmsError::Config(_))));
        assert!(matches!(LocalKms::open(&path), Err(KmsError::Kms(m)) if m.contains("does not exist")));
        let big = dir.path().join("big.json");
        write_keyring(&big, "", 0o600);
        std::fs::File::options().write(true).open(&big).unwrap().set_len(KEYRING_MAX + 1).unwrap();
        match LocalKms::open(big.to_str().unwrap()) {
            Err(KmsError::KeyringFormat(m)) => {
                assert!(m.ends_with("is 16777217 bytes, more than the 16777216 it may have"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rewritten_keyring_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = vector_keyring(dir.path());
        let kms = LocalKms::open(&path).unwrap();
        let new_id = "00112233445566778899aabbccddeeff";
        let text = keyring_json(&[(KID, &unhex(PRIMARY)), (new_id, &[5u8; 32])], new_id);
        let tmp = dir.path().join(".tmp");
        write_keyring(&tmp, &text, 0o600);
        std::fs::rename(&tmp, &path).unwrap();
        let (_, kid, _) = kms.generate_data_key(None).unwrap();
        assert_eq!(hex(&kid), new_id);
        assert!(kms.unwrap(&unhex(ENVELOPE)).is_ok(), "old keys still unwrap");
    }

    fn parse_error(text: &str) -> String {
        match parse_keyring(text.as_bytes(), "/k") {
            Err(KmsError::KeyringFormat(m)) => m.strip_prefix("keyring /k: ").unwrap().to_string(),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn keyring_format_errors() {
        let key = b64(&[1; 32]);
        let good_entry =
            format!(r#"{{"id": "{KID}", "created": "2025-01-31T12:00:00.000000Z", "key": "{key}"}}"#);
        let doc = |fields: &str| format!("{{{fields}}}");
        let base = format!(r#""version": 1, "current": "{KID}", "keys": [{good_entry}]"#);
        assert!(parse_keyring(doc(&base).as_bytes(), "/k").is_ok());
        // Python's quirks: "format" may be missing; version 1.0 and true equal 1.
        for version in ["1.0", "true"] {
            let text = doc(&base.replace(r#""version": 1"#, &format!(r#""version": {version}"#)));
            assert!(parse_keyring(text.as_bytes(), "/k").is_ok(), "{version}");
        }
        // Lower-case, upper-case, spaced ids are one id as Python's bytes.fromhex reads them.
        let spaced = doc(&base
            .replace(&format!(r#""current": "{KID}""#), r#""current": "D0D1 d2d3d4d5d6d7d8d9dadbdcdddedf""#));
        assert!(parse_keyring(spaced.as_bytes(), "/k").is_ok());

        assert!(parse_error("{").starts_with("not valid JSON (EOF while parsing"));
        assert!(parse_error("\u{feff}{}").starts_with("not valid JSON"));
        assert_eq!(parse_error("\"x\""), "not a JSON object");
        assert_eq!(
            parse_keyring(b"\xff", "/k").unwrap_err().message(),
            "keyring /k: not valid JSON (not UTF-8 at byte 0)"
        );
        assert_eq!(
            parse_error(&("[".repeat(5000) + &"]".repeat(5000))),
            "not valid JSON (nested too deeply)"
        );
        assert_eq!(parse_error("[]"), "not a JSON object");
        assert_eq!(
            parse_error(&doc(&format!(r#""format": "other", {base}"#))),
            "format is not 'exitless-kms-keyring'"
        );
        assert_eq!(
            parse_error(&doc(&format!(r#""format": null, {base}"#))),
            "format is not 'exitless-kms-keyring'"
        );
        assert_eq!(
            parse_error(&doc(&base.replace(r#""version": 1"#, r#""version": 2"#))),
            "unsupported version 2 (this reader knows 1)"
        );
        assert_eq!(
            parse_error(&doc(&base.replace(r#""version": 1, "#, ""))),
            "unsupported version None (this reader knows 1)"
        );
        assert_eq!(
            parse_error(&doc(
                &base.replace(r#""version": 1"#, &format!(r#""version": "{}""#, "v".repeat(50)))
            )),
            format!("unsupported version '{}'... (50 characters) (this reader knows 1)", "v".repeat(40))
        );
        assert_eq!(parse_error(&doc(r#""version": 1, "keys": {}"#)), "'keys' must be a list");
        assert_eq!(parse_error(&doc(r#""version": 1, "keys": [1]"#)), "keys[0] is not an object");
        for id in ["\"d0\"", "\"zz\"", "17", &format!("\"{KID}00\"")] {
            let text = doc(&base.replace(&format!(r#""id": "{KID}""#), &format!(r#""id": {id}"#)));
            assert_eq!(parse_error(&text), "keys[0]: 'id' must be 32 hex digits", "{id}");
        }
        let twice =
            doc(&format!(r#""version": 1, "current": "{KID}", "keys": [{good_entry}, {good_entry}]"#));
        assert_eq!(parse_error(&twice), format!("key id {KID} appears twice"));
        for created in ["\"yesterday\"", "null", "\"2025-02-30T00:00:00Z\""] {
            let text = doc(&base.replace(r#""2025-01-31T12:00:00.000000Z""#, created));
            assert_eq!(
                parse_error(&text),
                format!("key {KID}: 'created' is not an ISO 8601 time"),
                "{created}"
            );
        }
        for bad_b64 in [
            format!("{key}="),
            format!(" {key}"),
            key.replace('=', ""),
            "é".into(),
            format!("{}!=", &key[..42]),
        ] {
            let text = doc(&base.replace(&key, &bad_b64));
            assert_eq!(parse_error(&text), format!("key {KID}: 'key' is not valid base64"), "{bad_b64}");
        }
        for (bad_key, n) in [(b64(&[1; 31]), 31), (b64(&[1; 33]), 33), (String::new(), 0)] {
            let text = doc(&base.replace(&key, &bad_key));
            assert_eq!(parse_error(&text), format!("key {KID}: 'key' must decode to 32 bytes, got {n}"));
        }
        let not_a_string = doc(&base.replace(&format!("\"{key}\""), "7"));
        assert_eq!(parse_error(&not_a_string), format!("key {KID}: 'key' must decode to 32 bytes, got 0"));
        assert_eq!(
            parse_error(&doc(&base.replace(&format!(r#""current": "{KID}", "#), ""))),
            "'current' is missing"
        );
        assert_eq!(
            parse_error(&doc(&base.replace(&format!(r#""current": "{KID}""#), r#""current": "00""#))),
            "'current' ('00') is not one of the key ids"
        );
        // No keys and no current: a keyring that unwraps nothing (Python's init never writes one).
        let (current, keys) = parse_keyring(br#"{"version": 1, "keys": []}"#, "/k").unwrap();
        assert!(current.is_none() && keys.is_empty());
    }

    #[test]
    fn an_empty_keyring_has_no_current_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        write_keyring(&p, r#"{"version": 1, "keys": []}"#, 0o600);
        let kms = LocalKms::open(p.to_str().unwrap()).unwrap();
        match kms.generate_data_key(None) {
            Err(KmsError::Kms(m)) => {
                assert_eq!(m, format!("{} has no primary key yet; call create_key()", kms.uri()))
            }
            other => panic!("{other:?}"),
        }
    }
}
