//! exitless-kms against the Python package's `exitless.kms`, both directions, for
//! both KMS kinds: Python makes the keyring / primary keys and wraps data keys that
//! this crate unwraps, and this crate wraps data keys that Python unwraps. Single
//! flipped bits in an envelope never give a key, and the two implementations report
//! the same error class for each.
//!
//! Needs `EXITLESS_TEST_PYTHON`, a Python interpreter that imports `exitless` (e.g.
//! /work/main/.venv/bin/python; the PKCS#11 test also needs python-pkcs11 and
//! SoftHSM2). Without it the tests print that they were skipped, and pass.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use exitless_kms::{Kms, KmsError};

/// The tests run one at a time: the PKCS#11 one sets this process's environment
/// (SoftHSM reads SOFTHSM2_CONF when the module is initialized), which must not race
/// with another thread starting a Python process.
static SERIAL: Mutex<()> = Mutex::new(());

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";
const PIN_VAR: &str = "EXITLESS_KMS_RS_TEST_PIN";

fn python(test: &str) -> Option<OsString> {
    let python = std::env::var_os("EXITLESS_TEST_PYTHON");
    if python.is_none() {
        eprintln!(
            "{test}: skipped: EXITLESS_TEST_PYTHON is not set (set it to a Python interpreter that \
             imports exitless, e.g. /work/main/.venv/bin/python, to run the cross-tests with Python)"
        );
    }
    python
}

/// Runs `script` with `args`; returns its stdout lines (panics with its stderr on failure).
fn run_py(python: &OsStr, script: &str, args: &[&str], env: &[(&str, &OsStr)], stdin: &str) -> Vec<String> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start EXITLESS_TEST_PYTHON");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_string();
    let writer = std::thread::spawn(move || input.write_all(data.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "python failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// Python's unwrap of each envelope: the key's hex, or the error class.
const PY_UNWRAP_EACH: &str = r#"
import sys
from exitless.kms import KmsError, open_kms
with open_kms(sys.argv[1]) as k:
    for line in sys.stdin:
        try:
            print(k.unwrap(bytes.fromhex(line.strip())).secret_bytes().hex())
        except KmsError as e:
            print(type(e).__name__)
"#;

/// Every single-bit flip of `envelope`: never a key from this crate, the error class
/// Python gives for the same bytes, and which part of the envelope decides it.
fn check_flipped_bits(python: &OsStr, kms: &Kms, envelope: &[u8], env: &[(&str, &OsStr)]) {
    let mut tampered = Vec::new();
    for bit in 0..envelope.len() * 8 {
        let mut bad = envelope.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        tampered.push(bad);
    }
    let input: String = tampered.iter().map(|t| hex(t) + "\n").collect();
    let python_says = run_py(python, PY_UNWRAP_EACH, &[kms.uri()], env, &input);
    assert_eq!(python_says.len(), tampered.len());
    for (bit, (bad, py)) in tampered.iter().zip(&python_says).enumerate() {
        let err = match kms.unwrap(bad) {
            Ok(_) => panic!("{}: a flipped bit {bit} still unwraps", kms.uri()),
            Err(e) => e,
        };
        assert_eq!(err.class_name(), py, "bit {bit}: rust {err:?}, python {py}");
        let byte = bit / 8;
        match &err {
            // The scheme byte and the length field: not a wrapped key.
            KmsError::WrappedKeyFormat(_) => {
                assert!(byte == 0 || byte == 17 || byte == 18, "bit {bit}: {err:?}")
            }
            // The primary key id: unknown; the wrapped bytes: authentication.
            KmsError::Unwrap(m) if (1..17).contains(&byte) => {
                assert!(m.contains("cannot unwrap data key: primary key"), "{m}")
            }
            KmsError::Unwrap(m) => {
                assert!(byte >= 19 && m.contains("wrong primary key, or the wrapped key was modified"), "{m}")
            }
            other => panic!("bit {bit}: {other:?}"),
        }
    }
}

#[test]
fn local_kms_python_and_rust_unwrap_each_others_keys() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = python("local_kms_python_and_rust_unwrap_each_others_keys") else { return };
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring.json");
    let path = keyring.to_str().unwrap();
    let uri = format!("local:{path}");

    // Python makes the keyring and a wrapped data key.
    let out = run_py(
        &python,
        r#"
import sys
from exitless.kms import LocalKms, WrappedKey, open_kms
LocalKms.init(sys.argv[1]).close()
with open_kms("local:" + sys.argv[1]) as k:
    key, wk = k.generate_data_key()
    assert WrappedKey.from_bytes(wk.to_bytes()) == wk
    print(key.secret_bytes().hex(), wk.to_bytes().hex(), k.current_key_id.hex(), k.uri)
"#,
        &[path],
        &[],
        "",
    );
    let [py_key, py_envelope, first_id, py_uri] = &words(&out[0])[..] else { panic!("{out:?}") };
    assert_eq!(std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o777, 0o600);

    // Rust unwraps it to the same 32 bytes.
    let kms = Kms::open(&uri).unwrap();
    assert!(matches!(kms, Kms::Local(_)));
    assert_eq!(kms.uri(), py_uri);
    let key = kms.unwrap(&unhex(py_envelope)).unwrap();
    assert_eq!(hex(key.expose_secret()), *py_key);

    // Rust generates under the current key; Python unwraps to the same 32 bytes.
    let (rs_key, rs_id, rs_envelope) = kms.generate_data_key(None).unwrap();
    assert_eq!(hex(&rs_id), *first_id);
    assert_eq!(rs_envelope.len(), 79);
    assert_eq!((rs_envelope[0], &rs_envelope[1..17], &rs_envelope[17..19]), (1, &rs_id[..], &[0u8, 60][..]));
    let back = run_py(&python, PY_UNWRAP_EACH, &[&uri], &[], &(hex(&rs_envelope) + "\n"));
    assert_eq!(back, vec![hex(rs_key.expose_secret())]);
    assert_ne!(rs_key.expose_secret(), key.expose_secret());

    check_flipped_bits(&python, &kms, &rs_envelope, &[]);

    // Python rotates: this (open) instance sees the new current key, and still
    // unwraps the old envelopes; an explicit old key id wraps under the old key.
    let out = run_py(
        &python,
        "import sys\nfrom exitless.kms import open_kms\nprint(open_kms(sys.argv[1]).rotate().hex())",
        &[&uri],
        &[],
        "",
    );
    let second_id = &out[0];
    let (k2, id2, e2) = kms.generate_data_key(None).unwrap();
    assert_eq!(hex(&id2), *second_id);
    let (k1, id1, e1) = kms.generate_data_key(Some(unhex(first_id).try_into().unwrap())).unwrap();
    assert_eq!(hex(&id1), *first_id);
    let back = run_py(&python, PY_UNWRAP_EACH, &[&uri], &[], &format!("{}\n{}\n", hex(&e2), hex(&e1)));
    assert_eq!(back, vec![hex(k2.expose_secret()), hex(k1.expose_secret())]);
    assert_eq!(hex(kms.unwrap(&unhex(py_envelope)).unwrap().expose_secret()), *py_key);

    // The keyring chmodded to 0644: refused by both from the next operation on.
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(kms.unwrap(&rs_envelope), Err(KmsError::InsecureKeyring(_))));
    let back = run_py(
        &python,
        "import sys\nfrom exitless.kms import KmsError, open_kms\ntry:\n    open_kms(sys.argv[1])\nexcept KmsError as e:\n    print(type(e).__name__)",
        &[&uri],
        &[],
        "",
    );
    assert_eq!(back, vec!["InsecureKeyringError".to_string()]);
}

/// SoftHSM2 with a private configuration and token directory.
fn init_tokens(base: &Path, labels: &[&str]) -> OsString {
    let tokens = base.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = base.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    for label in labels {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "5678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("run softhsm2-util (apt-get install -y softhsm2)");
        assert!(out.status.success(), "softhsm2-util: {}", String::from_utf8_lossy(&out.stderr));
    }
    conf.into_os_string()
}

#[test]
fn pkcs11_kms_python_and_rust_unwrap_each_others_keys() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = python("pkcs11_kms_python_and_rust_unwrap_each_others_keys") else { return };
    assert!(
        Path::new(SOFTHSM_MODULE).exists(),
        "{SOFTHSM_MODULE} is missing: apt-get install -y softhsm2 (and pip install python-pkcs11)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Every token exists before this process first loads the module.
    let conf = init_tokens(dir.path(), &["L", "L-rogue"]);
    let pin = OsString::from(PIN);
    let env: [(&str, &OsStr); 2] = [("SOFTHSM2_CONF", &conf), (PIN_VAR, &pin)];
    let uri = |token: &str| format!("pkcs11:module={SOFTHSM_MODULE};token={token};pin-env={PIN_VAR}");

    // Python: two primary keys on L (the second current), two wrapped data keys; on
    // L-rogue a good primary key and an extractable one carrying an exitless label.
    let out = run_py(
        &python,
        r#"
import sys
import pkcs11
from pkcs11 import Attribute as A
from exitless.kms import open_kms
with open_kms(sys.argv[1]) as k:
    a = k.create_key()
    b = k.rotate()
    assert k.current_key_id == b
    key, wk = k.generate_data_key()
    key_a, wk_a = k.generate_data_key(a)
    print(a.hex(), b.hex(), k.uri)
    print(key.secret_bytes().hex(), wk.to_bytes().hex())
    print(key_a.secret_bytes().hex(), wk_a.to_bytes().hex())
with open_kms(sys.argv[2]) as k:
    good = k.create_key()
    key_g, wk_g = k.generate_data_key()
    rogue_id = bytes(range(16))
    session = pkcs11.lib(sys.argv[3]).get_token(token_label="L-rogue").open(rw=True)
    try:
        session.create_object({
            A.CLASS: pkcs11.ObjectClass.SECRET_KEY, A.KEY_TYPE: pkcs11.KeyType.AES,
            A.TOKEN: True, A.PRIVATE: True, A.VALUE: bytes(32), A.ID: rogue_id,
            A.WRAP: True, A.UNWRAP: True, A.EXTRACTABLE: True, A.SENSITIVE: False,
            A.LABEL: f"exitless-kms-v1:{rogue_id.hex()}:2999-01-01T00:00:00.000000Z",
        })
    finally:
        session.close()
    print(good.hex(), key_g.secret_bytes().hex(), wk_g.to_bytes().hex())
"#,
        &[&uri("L"), &uri("L-rogue"), SOFTHSM_MODULE],
        &env,
        "",
    );
    let [id_a, id_b, py_uri] = &words(&out[0])[..] else { panic!("{out:?}") };
    let [py_key, py_envelope] = &words(&out[1])[..] else { panic!("{out:?}") };
    let [py_key_a, py_envelope_a] = &words(&out[2])[..] else { panic!("{out:?}") };
    let [good_id, key_g, envelope_g] = &words(&out[3])[..] else { panic!("{out:?}") };

    // This process's SoftHSM reads the same configuration.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    std::env::set_var(PIN_VAR, PIN);

    // Rust, PIN from a 0600 file: unwraps Python's envelopes to the same bytes.
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_uri = format!("pkcs11:module={SOFTHSM_MODULE};token=L;pin-file={}", pin_file.display());
    let kms = Kms::open(&file_uri).unwrap();
    assert!(matches!(kms, Kms::Pkcs11(_)));
    assert_eq!(kms.uri(), file_uri);
    for (key, envelope) in [(py_key, py_envelope), (py_key_a, py_envelope_a)] {
        assert_eq!(hex(kms.unwrap(&unhex(envelope)).unwrap().expose_secret()), *key);
    }
    // A second instance on the token, PIN from the environment: joins the login.
    let kms_env = Kms::open(&uri("L")).unwrap();
    assert_eq!(kms_env.uri(), py_uri);
    assert_eq!(hex(kms_env.unwrap(&unhex(py_envelope)).unwrap().expose_secret()), *py_key);

    // Rust generates: under the newest key for None, under the named key otherwise;
    // Python unwraps them to the same bytes.
    let (k_b, kid_b, e_b) = kms.generate_data_key(None).unwrap();
    assert_eq!(hex(&kid_b), *id_b);
    assert_eq!((e_b.len(), e_b[0], &e_b[1..17], &e_b[17..19]), (59, 2, &kid_b[..], &[0u8, 40][..]));
    let (k_a, kid_a, e_a) = kms_env.generate_data_key(Some(unhex(id_a).try_into().unwrap())).unwrap();
    assert_eq!(hex(&kid_a), *id_a);
    let back =
        run_py(&python, PY_UNWRAP_EACH, &[&uri("L")], &env, &format!("{}\n{}\n", hex(&e_b), hex(&e_a)));
    assert_eq!(back, vec![hex(k_b.expose_secret()), hex(k_a.expose_secret())]);
    assert_eq!(hex(kms.unwrap(&e_a).unwrap().expose_secret()), hex(k_a.expose_secret()));

    check_flipped_bits(&python, &kms, &e_b, &env);

    // Another KMS kind's envelope, an unknown primary key, an unknown token.
    let mut scheme1 = vec![1u8];
    scheme1.extend_from_slice(&kid_b);
    scheme1.extend_from_slice(&[0, 60]);
    scheme1.extend_from_slice(&[0; 60]);
    assert!(matches!(kms.unwrap(&scheme1), Err(KmsError::Unwrap(m)) if m.contains("it handles scheme 2")));
    assert!(
        matches!(kms.generate_data_key(Some([7; 16])), Err(KmsError::Kms(m)) if m == "token 'L' has no primary key 07070707070707070707070707070707")
    );
    match Kms::open(&uri("nope")) {
        Err(KmsError::Config(m)) => {
            assert_eq!(m, format!("no PKCS#11 token labelled 'nope' in {SOFTHSM_MODULE}"))
        }
        other => panic!("{other:?}"),
    }
    // A different PIN for a token this process is logged in to.
    let wrong_pin = dir.path().join("wrong-pin");
    std::fs::write(&wrong_pin, "4321").unwrap();
    std::fs::set_permissions(&wrong_pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong_uri = |token: &str| {
        format!("pkcs11:module={SOFTHSM_MODULE};token={token};pin-file={}", wrong_pin.display())
    };
    match Kms::open(&wrong_uri("L")) {
        Err(e @ KmsError::Kms(_)) => {
            assert_eq!(e.message(), "token 'L' is already logged in by this process with a different PIN");
            assert!(!e.message().contains("4321") && !e.message().contains(PIN));
        }
        other => panic!("{other:?}"),
    }

    // L-rogue: an exitless-labelled key without the protections poisons every lookup
    // that finds it (the newest, for None), not a lookup by another key's id.
    let rogue = Kms::open(&uri("L-rogue")).unwrap();
    match rogue.generate_data_key(None) {
        Err(KmsError::Kms(m)) => {
            assert!(m.contains("000102030405060708090a0b0c0d0e0f") && m.contains("CKA_EXTRACTABLE"), "{m}");
            assert!(m.contains("refusing to use it"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hex(rogue.unwrap(&unhex(envelope_g)).unwrap().expose_secret()), *key_g);
    let (_, kid_g, _) = rogue.generate_data_key(Some(unhex(good_id).try_into().unwrap())).unwrap();
    assert_eq!(hex(&kid_g), *good_id);
    // Dropping the last instance logs out: a wrong PIN now fails at login, the right one works.
    drop(rogue);
    match Kms::open(&wrong_uri("L-rogue")) {
        Err(KmsError::Kms(m)) => assert_eq!(m, "login to token 'L-rogue' failed: PinIncorrect"),
        other => panic!("{other:?}"),
    }
    let rogue = Kms::open(&uri("L-rogue")).unwrap();
    assert_eq!(hex(rogue.unwrap(&unhex(envelope_g)).unwrap().expose_secret()), *key_g);
}
