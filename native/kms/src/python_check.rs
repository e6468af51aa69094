//! Checks the ports of Python's standard library (`compat`, `isotime`) against the
//! real thing on a generated corpus, when `EXITLESS_TEST_PYTHON` names a Python
//! interpreter; prints why it skipped otherwise.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::{compat, isotime};

const SCRIPT: &str = r#"
import sys, json, datetime, urllib.parse, posixpath
NAIVE = datetime.datetime(1, 1, 1)
AWARE = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
for line in sys.stdin:
    kind, s = json.loads(line)
    if kind == "iso":
        try:
            d = datetime.datetime.fromisoformat(s)
        except ValueError:
            out = None
        else:
            aware = d.tzinfo is not None
            td = d - (AWARE if aware else NAIVE)
            out = [aware, td.days * 86400000000 + td.seconds * 1000000 + td.microseconds]
    elif kind == "unquote":
        out = urllib.parse.unquote(s)
    elif kind == "quote":
        out = urllib.parse.quote(s, safe="/:@-._~")
    elif kind == "fromhex":
        try:
            out = bytes.fromhex(s).hex()
        except ValueError:
            out = None
    elif kind == "normpath":
        out = posixpath.normpath(s)
    print(json.dumps(out))
"#;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Strings near `seeds`: characters replaced, inserted, deleted, truncated; and
/// random strings over `alphabet`.
fn corpus(seeds: &[&str], alphabet: &[char], n: usize, rng: &mut Rng) -> Vec<String> {
    let mut out: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    while out.len() < n {
        let mut chars: Vec<char> = if rng.below(5) == 0 {
            (0..rng.below(26)).map(|_| *rng.pick(alphabet)).collect()
        } else {
            rng.pick(seeds).chars().collect()
        };
        for _ in 0..1 + rng.below(3) {
            let len = chars.len();
            match rng.below(4) {
                0 if len > 0 => chars[rng.below(len)] = *rng.pick(alphabet),
                1 => chars.insert(rng.below(len + 1), *rng.pick(alphabet)),
                2 if len > 0 => {
                    chars.remove(rng.below(len));
                }
                3 if len > 0 => chars.truncate(rng.below(len)),
                _ => {}
            }
        }
        out.push(chars.into_iter().collect());
    }
    out
}

fn ours(kind: &str, s: &str) -> Value {
    match kind {
        "iso" => match isotime::fromisoformat(s) {
            Some(d) => json!([d.is_aware(), d.comparable_us()]),
            None => Value::Null,
        },
        "unquote" => json!(compat::unquote(s)),
        "quote" => json!(compat::quote(s)),
        "fromhex" => compat::fromhex(s).map_or(Value::Null, |b| json!(crate::envelope::hex(&b))),
        "normpath" => json!(compat::abspath(s).unwrap()),
        _ => unreachable!(),
    }
}

#[test]
fn the_ports_match_python() {
    let Some(python) = std::env::var_os("EXITLESS_TEST_PYTHON") else {
        eprintln!(
            "skipped: set EXITLESS_TEST_PYTHON to a Python interpreter to compare the ports with Python"
        );
        return;
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let iso_seeds = [
        "2025-01-31T12:34:56.789012+05:30",
        "2025-01-31T12:00:00.000000Z",
        "2025-W05-5T12:00:00Z",
        "2025W055T1200",
        "20250131T123456,5-01",
        "2024-W53",
        "2020-W53-7 23:59:59.999999+23:59",
        "2026-W53-1",
        "0001-01-01T00:00:00+00:00:00.5",
        "0001-01-01T00:30+01:00",
        "9999-12-31T23:59:59.9999999-00:01",
        "2025-01-31T12:34:56:78",
        "2025-01-31T123456789",
        "2025-02-29",
        "2024-02-29T24:00",
        "2025-01-31T12:00:00.5+00:99",
        "2025-01-31\u{e9}12:00",
        "2025-01-31\u{3000}12:00Z",
        "2025-01-31T12+01",
    ];
    let iso_alphabet: Vec<char> =
        "0123456789012345678901234567890123456789-:.,TWZ+ x\u{e9}\u{3000}".chars().collect();
    let hex_alphabet: Vec<char> = "0123456789abcdefABCDEFgz \t\n\u{b}\u{c}\u{a0}".chars().collect();
    let url_alphabet: Vec<char> =
        "%%%%0123456789abcdefABCDEFzZ;/:@-._~+ ?&=\u{e9}\u{20ac}\u{1f600}".chars().collect();
    let path_alphabet: Vec<char> = "////....ab".chars().collect();
    let mut cases: Vec<(&str, String)> = Vec::new();
    for s in corpus(&iso_seeds, &iso_alphabet, 40_000, &mut rng) {
        cases.push(("iso", s));
    }
    for s in corpus(&["d0d1d2d3 d4d5", "00ff", " 0a\n0B "], &hex_alphabet, 3_000, &mut rng) {
        cases.push(("fromhex", s));
    }
    for s in corpus(&["a%3Bb", "%C3%A9%e2%82%AC", "%F0%9F%98%80x", "%zz%4"], &url_alphabet, 3_000, &mut rng) {
        cases.push(("unquote", s.clone()));
        cases.push(("quote", s));
    }
    for s in corpus(&["/a/./b/../c", "//x/../y", "/../..//z/."], &path_alphabet, 2_000, &mut rng) {
        cases.push(("normpath", format!("/{s}")));
    }

    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start EXITLESS_TEST_PYTHON");
    let mut input = String::new();
    for (kind, s) in &cases {
        input.push_str(&json!([kind, s]).to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "python failed");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len());
    let mut mismatches = Vec::new();
    let mut accepted = 0;
    for ((kind, s), line) in cases.iter().zip(lines) {
        let want: Value = serde_json::from_str(line).unwrap();
        let got = ours(kind, s);
        if *kind == "iso" && !want.is_null() {
            accepted += 1;
        }
        if got != want {
            mismatches.push(format!("{kind} {s:?}: python {want}, rust {got}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
    // The corpus exercises both outcomes.
    assert!(accepted > 2_000 && accepted < 38_000, "{accepted} of the iso strings accepted");
    eprintln!("{} cases match Python ({accepted} iso strings accepted)", cases.len());
}
