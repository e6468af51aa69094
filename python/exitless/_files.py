"""Reading the small private files that hold secrets: key files, keyrings, PIN files.

Such a file is opened without following a symbolic link in its last component
(``O_NOFOLLOW``) and without blocking on a FIFO (``O_NONBLOCK``); the checks then
run on the opened descriptor (``fstat``), so the file checked is the file read:

- a regular file;
- owned by the calling user (effective uid) or by root;
- no permission bits for group or others;
- at most ``limit`` bytes (nothing unbounded is read into memory).

Every refusal names the path and the problem, never the file's contents.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["check_private_stat", "describe_mode", "open_nofollow", "read_private_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISREG, "a regular file"),
)


def describe_mode(mode: int) -> str:
    """What kind of file ``mode`` (an ``st_mode``) belongs to, e.g. ``"a FIFO"``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _is_symlink(path: str | os.PathLike[str]) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def open_nofollow(
    path: str | os.PathLike[str], flags: int, what: str, insecure: type[Exception], mode: int = 0o600
) -> int:
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode)``; a symbolic link at
    ``path`` raises ``insecure`` (naming ``what`` and the path) instead of ``ELOOP``."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP and _is_symlink(path):
            refused = insecure(
                f"{what} {os.fspath(path)} is a symbolic link; refusing to follow it (name the file itself)"
            )
        else:
            raise
    raise refused  # outside the except block: no chained ELOOP


def check_private_stat(
    st: os.stat_result,
    path: str | os.PathLike[str],
    what: str,
    insecure: type[Exception],
    invalid: type[Exception],
) -> None:
    """Raises ``invalid`` if ``st`` is not a regular file, ``insecure`` if it is owned
    by another user than the caller or root, or if group or others have any access."""
    p = os.fspath(path)
    if not stat.S_ISREG(st.st_mode):
        raise invalid(f"{what} {p} is {describe_mode(st.st_mode)}, not a regular file")
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise insecure(
            f"{what} {p} is owned by uid {st.st_uid}, not by this user (uid {euid}) or root; refusing it"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise insecure(
            f"{what} {p} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )


def read_private_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    limit: int,
    insecure: type[Exception] = PermissionError,
    invalid: type[Exception] = ValueError,
    too_large: type[Exception] | None = None,
) -> tuple[bytearray, os.stat_result]:
    """The whole content of the private file at ``path`` (a ``bytearray`` the caller
    should wipe) and its ``fstat``. Refusals: a symbolic link or another user's file
    or a group/other-accessible file raise ``insecure``; not a regular file raises
    ``invalid``; more than ``limit`` bytes raises ``too_large`` (default ``invalid``).
    A missing file raises ``FileNotFoundError`` as usual."""
    fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK, what, insecure)
    raw = bytearray()
    try:
        st = os.fstat(fd)
        check_private_stat(st, path, what, insecure, invalid)
        big = too_large or invalid
        if st.st_size > limit:
            raise big(f"{what} {os.fspath(path)} is {st.st_size} bytes, more than the {limit} it may have")
        while chunk := os.read(fd, min(65536, limit + 1 - len(raw))):
            raw += chunk
            if len(raw) > limit:  # it grew while being read
                raise big(f"{what} {os.fspath(path)} is more than the {limit} bytes it may have")
    except BaseException:
        raw[:] = bytes(len(raw))
        raise
    finally:
        os.close(fd)
    return raw, st
