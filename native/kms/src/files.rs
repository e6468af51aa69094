//! Reading the small private files that hold secrets (keyrings, PIN files) as the
//! Python package's `exitless._files.read_private_file` does: opened without
//! following a symbolic link (`O_NOFOLLOW`) and without blocking on a FIFO
//! (`O_NONBLOCK`), then checked on the open descriptor (`fstat`), so the file
//! checked is the file read:
//!
//! - a regular file ([`KmsError::Config`] otherwise);
//! - owned by the caller (effective uid) or root, no group or other permission bits
//!   ([`KmsError::InsecureKeyring`] otherwise, also for a symbolic link);
//! - at most `limit` bytes (the caller's error, before anything is read).
//!
//! The bytes come back in a buffer that is wiped when dropped. Messages name the path
//! and the problem, never the contents.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use zeroize::Zeroizing;

use crate::error::{KmsError, Result};

/// What kind of file `md` describes, e.g. `"a FIFO"` (Python's `describe_mode`).
pub(crate) fn describe(md: &Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// The caller's effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// An `io::Error` from opening or reading `path`, as a [`KmsError::Kms`] (Python
/// lets the `OSError` through; this crate has one error type).
pub(crate) fn os_error(what: &str, path: &str, e: &std::io::Error) -> KmsError {
    let why = match e.kind() {
        ErrorKind::NotFound => "it does not exist".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    KmsError::Kms(format!("cannot read {what} {path}: {why}"))
}

/// The content of the private file at `path` (wiped on drop) and its `fstat`.
/// `too_large` makes the error for a file over `limit` bytes.
pub(crate) fn read_private_file(
    path: &str,
    what: &str,
    limit: u64,
    too_large: fn(String) -> KmsError,
) -> Result<(Zeroizing<Vec<u8>>, Metadata)> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = match OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path) {
        Ok(f) => f,
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) && is_link {
                return Err(KmsError::InsecureKeyring(format!(
                    "{what} {path} is a symbolic link; refusing to follow it (name the file itself)"
                )));
            }
            return Err(os_error(what, path, &e));
        }
    };
    let md = file.metadata().map_err(|e| os_error(what, path, &e))?;
    check_private(&md, path, what)?;
    if md.size() > limit {
        return Err(too_large(format!(
            "{what} {path} is {} bytes, more than the {limit} it may have",
            md.size()
        )));
    }
    let raw = read_bounded(&mut file, md.size(), limit).map_err(|e| os_error(what, path, &e))?;
    match raw {
        Some(raw) => Ok((raw, md)),
        None => Err(too_large(format!("{what} {path} is more than the {limit} bytes it may have"))),
    }
}

/// Python's `check_private_stat`.
fn check_private(md: &Metadata, path: &str, what: &str) -> Result<()> {
    if !md.file_type().is_file() {
        return Err(KmsError::Config(format!("{what} {path} is {}, not a regular file", describe(md))));
    }
    let euid = euid();
    if md.uid() != euid && md.uid() != 0 {
        return Err(KmsError::InsecureKeyring(format!(
            "{what} {path} is owned by uid {}, not by this user (uid {euid}) or root; refusing it",
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(KmsError::InsecureKeyring(format!(
            "{what} {path} is accessible by group or others (mode {:o}); chmod 600 it",
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Reads all of `file` into a wiped-on-drop buffer, never holding an unwiped copy:
/// the buffer is sized from `hint` (the `fstat` size) and, if the file grew, moved to
/// a larger one whose predecessor is wiped. `None` if it has more than `limit` bytes.
fn read_bounded(file: &mut File, hint: u64, limit: u64) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let cap = |n: u64| usize::try_from(n.min(limit) + 1).unwrap_or(usize::MAX);
    let mut buf = Zeroizing::new(vec![0u8; cap(hint)]);
    let mut len = 0usize;
    loop {
        if len == buf.len() {
            if len as u64 > limit {
                return Ok(None); // it grew while being read
            }
            let mut bigger = Zeroizing::new(vec![0u8; cap((len as u64).saturating_mul(2).max(4096))]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len as u64 > limit {
        return Ok(None);
    }
    // Truncating keeps the allocation; the bytes past `len` are zeros already.
    buf.truncate(len);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &std::path::Path, data: &[u8], mode: u32) {
        std::fs::write(path, data).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn read(path: &std::path::Path, limit: u64) -> Result<Vec<u8>> {
        read_private_file(path.to_str().unwrap(), "test file", limit, KmsError::KeyringFormat)
            .map(|(raw, _)| raw.to_vec())
    }

    #[test]
    fn private_files_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"secret", 0o600);
        assert_eq!(read(&p, 100).unwrap(), b"secret");
        assert_eq!(read(&p, 6).unwrap(), b"secret");
        // Too large: refused before reading, naming the sizes, not the content.
        let e = read(&p, 5).unwrap_err();
        assert!(
            matches!(&e, KmsError::KeyringFormat(m) if m.ends_with("is 6 bytes, more than the 5 it may have"))
        );
        for mode in [0o640, 0o604, 0o644, 0o700 | 0o001, 0o620] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read(&p, 100).unwrap_err();
            match &e {
                KmsError::InsecureKeyring(m) => {
                    assert!(m.contains(&format!("(mode {mode:o}); chmod 600 it")), "{m}");
                    assert!(!m.contains("secret"));
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read(&p, 100).unwrap(), b"secret");
        // A symbolic link, even to a good file.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(
            matches!(read(&link, 100), Err(KmsError::InsecureKeyring(m)) if m.contains("is a symbolic link"))
        );
        // A directory, a FIFO (never waited on): not regular files.
        assert!(
            matches!(read(dir.path(), 100), Err(KmsError::Config(m)) if m.contains("is a directory, not a regular file"))
        );
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            assert!(matches!(read(&fifo, 100), Err(KmsError::Config(m)) if m.contains("is a FIFO")));
        }
        // Missing.
        assert!(
            matches!(read(&dir.path().join("nope"), 100), Err(KmsError::Kms(m)) if m.contains("does not exist"))
        );
    }

    #[test]
    fn another_users_file_is_refused() {
        if euid() != 0 {
            eprintln!("skipped: only root can give a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"x", 0o600);
        std::os::unix::fs::chown(&p, Some(4242), None).unwrap();
        let e = read(&p, 100).unwrap_err();
        assert!(
            matches!(&e, KmsError::InsecureKeyring(m) if m.contains("is owned by uid 4242, not by this user (uid 0) or root")),
            "{e:?}"
        );
    }
}
