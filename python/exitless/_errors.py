"""Exceptions, and the translation of native status codes into them."""

from __future__ import annotations

import errno as _errno
import os


class ExitlessError(Exception):
    """Base class of exitless's own errors."""


class IntegrityError(ExitlessError):
    """Sealed data failed authentication: it was tampered with, truncated, reordered
    or spliced, or the key or context is wrong. No plaintext of it is returned."""


class BackendUnavailableError(ExitlessError, RuntimeError):
    """The requested IO backend does not work on this machine (the message says why)."""


class ForkedStreamError(ExitlessError, RuntimeError):
    """A stream was used in a process other than the one that opened it (a forked
    child). It belongs to its opener: sealing from both would reuse one key and
    nonce, so nothing was done and the opener's stream is untouched. Open a new
    stream in the child instead."""


class FormatError(ExitlessError):
    """Not an exitless sealed stream, or a version or parameter this reader does not support."""


class RejectedCompletionError(ExitlessError):
    """The kernel returned a completion that fails validation: treat the host as hostile.

    An io_uring completion (or a switchless worker's result) claimed something no
    honest kernel reports: a stale, duplicated or invented operation, more bytes
    than were asked for, an errno no file operation has. Nothing of it was used and
    the stream is done: a writer's file is incomplete and never reads back whole.
    The message names the file, the segment (where known) and what was wrong.

    Deliberately neither an :class:`OSError` nor an :class:`IntegrityError`. Not an
    OSError: that says the kernel honestly reported a failure (a full disk, EIO)
    which callers may retry, clean up after or route elsewhere, and a generic
    ``except OSError`` must not swallow a sign of a hostile host; there is no errno.
    Not an IntegrityError: that is a verdict on sealed data (tampered, truncated,
    wrong key), and the file may be fine; the channel to it is what failed.
    """


def raise_for(status: int, path: str | os.PathLike[str] | None = None) -> None:
    """Raise the Python exception for a non-zero native status (uses the thread's last error)."""
    if status == 0:  # EXITLESS_OK: the common case, before any lookup
        return
    from ._native import ffi, lib

    message = ffi.string(lib.exitless_last_error_message()).decode("utf-8", "replace")
    raise error_for(status, message, lib.exitless_last_error_errno(), path)


def error_for(status: int, message: str, errno: int, path: str | os.PathLike[str] | None = None) -> Exception:
    """The Python exception for a non-zero native status, given the last error's
    message and errno (0: none; an IO error then says EIO)."""
    from ._native import lib

    if status == lib.EXITLESS_ERR_INTEGRITY:
        return IntegrityError(message)
    if status == lib.EXITLESS_ERR_FORMAT:
        return FormatError(message)
    if status == lib.EXITLESS_ERR_IO:
        return OSError(errno or _errno.EIO, message, os.fsdecode(path) if path is not None else None)
    if status in (lib.EXITLESS_ERR_INVALID_ARGUMENT, lib.EXITLESS_ERR_CLOSED):
        return ValueError(message)
    if status == lib.EXITLESS_ERR_WRONG_PROCESS:
        return ForkedStreamError(message)
    if status == lib.EXITLESS_ERR_REJECTED_COMPLETION:
        return RejectedCompletionError(message)
    return ExitlessError(f"native error {status}: {message}")
