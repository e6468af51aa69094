//! Small pieces of Python's standard library that the Python implementation's
//! behaviour depends on, so that this crate accepts and refuses the same inputs:
//! `bytes.fromhex`, `repr(str)` (for messages), `os.path.abspath`,
//! `urllib.parse.quote` / `unquote`.

/// Python's `bytes.fromhex(s)`: pairs of hex digits (either case), with ASCII
/// whitespace allowed between pairs (not inside one). `None` where Python raises
/// `ValueError`.
pub(crate) fn fromhex(s: &str) -> Option<Vec<u8>> {
    fn is_space(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
    }
    fn digit(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    if !s.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    let mut i = 0;
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            continue;
        }
        let hi = digit(b[i])?;
        let lo = digit(*b.get(i + 1)?)?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    Some(out)
}

/// Whether Python's `str.isprintable()` is false for `c` (approximately: control
/// characters, format characters and separators other than the space that are
/// common; Rust's standard library has no Unicode category tables).
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{a0}' | '\u{ad}' | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
                | '\u{205f}'..='\u{2064}' | '\u{3000}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        )
}

/// Python's `repr(s)` for a `str`: quoted, with backslash escapes for quotes,
/// backslashes and unprintable characters. For messages.
pub(crate) fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if unprintable(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `posixpath.normpath`.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial_slashes = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial_slashes == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(comp);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let joined = "/".repeat(initial_slashes) + &comps.join("/");
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Python's `os.path.abspath(path)` (POSIX): joined to the working directory if
/// relative, then normalized (`..` and `.` resolved lexically, no symlinks followed).
pub(crate) fn abspath(path: &str) -> std::io::Result<String> {
    if path.starts_with('/') {
        return Ok(normpath(path));
    }
    let cwd = std::env::current_dir()?;
    let cwd = cwd.to_str().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the working directory is not UTF-8")
    })?;
    let joined = if cwd.ends_with('/') { format!("{cwd}{path}") } else { format!("{cwd}/{path}") };
    Ok(normpath(&joined))
}

/// Python's `urllib.parse.unquote(s)`: `%XX` sequences decoded (as UTF-8, invalid
/// sequences replaced by U+FFFD), anything else (a `%` not followed by two hex
/// digits, `+`) kept. As Python, each run of ASCII characters is decoded on its own.
pub(crate) fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    fn hexval(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).map(|d| d as u8)
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii_len = rest.bytes().take_while(u8::is_ascii).count();
        if ascii_len == 0 {
            let non_ascii = rest.char_indices().find(|(_, c)| c.is_ascii()).map_or(rest.len(), |(i, _)| i);
            out.push_str(&rest[..non_ascii]);
            rest = &rest[non_ascii..];
            continue;
        }
        let run = &rest.as_bytes()[..ascii_len];
        let mut bytes = Vec::with_capacity(run.len());
        let mut i = 0;
        while i < run.len() {
            if run[i] == b'%' {
                if let (Some(hi), Some(lo)) =
                    (run.get(i + 1).copied().and_then(hexval), run.get(i + 2).copied().and_then(hexval))
                {
                    bytes.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
            }
            bytes.push(run[i]);
            i += 1;
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        rest = &rest[ascii_len..];
    }
    out
}

/// Python's `urllib.parse.quote(s, safe="/:@-._~")`: UTF-8 bytes other than ASCII
/// letters, digits and `_.-~/:@` as `%XX` (upper-case hex).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fromhex_is_pythons() {
        assert_eq!(fromhex("00ffAb").unwrap(), vec![0, 0xff, 0xab]);
        assert_eq!(fromhex(" 00 ff\t\nab ").unwrap(), vec![0, 0xff, 0xab]);
        assert_eq!(fromhex("").unwrap(), Vec::<u8>::new());
        for bad in ["0", "0 0", "zz", "0g", "é0", "00\u{a0}"] {
            assert!(fromhex(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn repr_is_pythons() {
        assert_eq!(repr("abc"), "'abc'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("'\""), "'\\'\"'");
        assert_eq!(repr("a\\b\n\x01\u{7f}é"), "'a\\\\b\\n\\x01\\x7fé'");
    }

    #[test]
    fn normpath_is_pythons() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//", "//"),
            ("///", "/"),
            ("//a/../b", "//b"),
            ("/a/./b/../c/", "/a/c"),
            ("/../a", "/a"),
            ("a/../../b", "../b"),
            ("../..", "../.."),
            ("a/..", "."),
            ("/tmp//k.json", "/tmp/k.json"),
        ] {
            assert_eq!(normpath(input), want, "{input:?}");
        }
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(abspath("x/../k.json").unwrap(), format!("{}/k.json", cwd.display()));
        assert_eq!(abspath("/a/b/..").unwrap(), "/a");
    }

    #[test]
    fn unquote_and_quote_are_pythons() {
        assert_eq!(unquote("a%3Bb%3bc"), "a;b;c");
        assert_eq!(unquote("%zz%4"), "%zz%4");
        assert_eq!(unquote("%"), "%");
        assert_eq!(unquote("a+b"), "a+b");
        assert_eq!(unquote("%C3%A9"), "é");
        assert_eq!(unquote("%C3"), "\u{fffd}");
        assert_eq!(unquote("%C3é%A9"), "\u{fffd}é\u{fffd}");
        assert_eq!(quote("/usr/lib/a b;c%é"), "/usr/lib/a%20b%3Bc%25%C3%A9");
        assert_eq!(quote("A-z_0.9~:@"), "A-z_0.9~:@");
    }
}
