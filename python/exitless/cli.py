"""The ``exitless`` command: keygen, seal, open, inspect, and ``kms`` (init,
create-key, rotate, list) for primary keys in a KMS (:mod:`exitless.kms`). The
benchmarks and the main job (``make run``) are a checkout's tools, not part of the
package: ``python -m exitless_tools``.

Every failure is one line on stderr and a non-zero exit status (1 for a bad file,
key or IO error; 2 for bad usage, including a refused input or output: the same file
named twice, a symbolic link or a device as OUT; 128+N after signal N). Keys come
from key files (``exitless keygen``), never from the command line, so they stay out
of shell history and ``ps``.

``seal`` and ``open`` are careful with the files they are given:

- IN, OUT and the key file (or local keyring, or PIN file) must be different files,
  compared by device and inode (``os.stat``), so hard links and symbolic links to
  one file are caught too. ``-`` compares stdin or stdout.
- OUT is a new path or an existing regular file. A symbolic link is refused (neither
  followed nor replaced), and so is any other kind of file: to write to a device or
  a FIFO, ``open`` writes to ``-`` (stdout), which the shell redirects. ``seal``
  writes only files (its OUT is never ``-``).
- ``seal`` reads a regular file, ``-`` (stdin), or a FIFO, which it opens without
  blocking and then waits ``--fifo-wait`` seconds at most for a writer. Other
  inputs (devices, sockets) are refused: use ``-`` and a redirection.
- On SIGINT, SIGTERM or SIGHUP (unless ignored when the command started, as under
  ``nohup``) the partial output is removed (``open``'s temporary file, ``seal``'s
  OUT) and the exit status is 128+N. SIGKILL cannot be caught.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import IO, Any, Protocol

from . import ExitlessError, Key, inspect, open_spill
from .streams import DEFAULT_SEGMENT_SIZE

CHUNK = 1 << 20
#: Seconds ``seal`` waits by default for a writer to open a FIFO given as IN.
FIFO_WAIT = 10.0
#: The signals after which ``seal`` and ``open`` remove their partial output.
CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class UsageError(ValueError):
    """A command line that names files it must refuse (exit status 2)."""


class Interrupted(BaseException):
    """Raised (like KeyboardInterrupt) by the handler of a caught signal."""

    def __init__(self, signum: int, removed: Sequence[str] = ()) -> None:
        super().__init__(signum)
        self.signum = signum
        self.removed = list(removed)

    def __str__(self) -> str:
        done = f"; removed the partial output {', '.join(self.removed)}" if self.removed else ""
        return f"interrupted by {signal.Signals(self.signum).name}{done}"


class _SignalCleanup:
    """For the duration of a ``with`` block, SIGINT, SIGTERM and SIGHUP remove the
    files :meth:`track`-ed (partial outputs) and raise :class:`Interrupted`.

    A signal ignored when the block is entered (``nohup`` ignores SIGHUP) stays
    ignored. After the first signal all three are ignored until the block ends, so
    the cleanup is not itself interrupted. Outside the main thread this does nothing
    (Python runs signal handlers only there)."""

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._saved: dict[int, Any] = {}
        self._active = threading.current_thread() is threading.main_thread()
        self._deferring = False
        self._pending: int | None = None

    def __enter__(self) -> _SignalCleanup:
        if self._active:
            for signum in CLEANUP_SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:
                    # None: a handler set outside Python, which cannot be put back.
                    self._saved[signum] = signal.SIG_DFL if previous is None else previous
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._saved.items():
            signal.signal(signum, previous)
        self._saved.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = signum
            return
        for other in self._saved:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum, self.remove())

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Holds a signal's handling back while a file is created and tracked, so
        that no signal lands between the two; it is handled when the block ends.
        (Python-level, because the OS may deliver the signal to another thread.)"""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._pending is not None:
                self._handle(self._pending, None)

    def track(self, path: str) -> None:
        """Removes ``path`` if a signal arrives (or on :meth:`remove`)."""
        self._paths.append(path)

    def untrack(self, path: str) -> None:
        """``path`` is complete: keep it whatever happens next."""
        if path in self._paths:
            self._paths.remove(path)

    def remove(self) -> list[str]:
        """Removes the tracked files (never following a symbolic link); returns those
        that were there."""
        removed = []
        while self._paths:
            path = self._paths.pop()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        return removed


def _named_key_files(args: argparse.Namespace) -> list[tuple[str, str, os.stat_result | None]]:
    """(role, path, stat) of the secret files the command will read: the key file,
    or the ``local:`` keyring or the PKCS#11 PIN file of ``--kms``."""
    named: list[tuple[str, str]] = []
    if args.kms:
        if args.kms.startswith("local:") and args.kms[len("local:") :]:
            named.append(("the keyring", args.kms[len("local:") :]))
        elif args.kms.startswith("pkcs11:"):
            from .kms.pkcs11 import _parse_pkcs11_uri

            attrs = _parse_pkcs11_uri(args.kms)
            if "pin-file" in attrs:
                named.append(("the PIN file", attrs["pin-file"]))
    elif path := args.key or os.environ.get("EXITLESS_KEY_FILE"):
        named.append(("the key file", path))
    return [(role, path, _stat(path)) for role, path in named]


def _check_distinct(named: list[tuple[str, str, os.stat_result | None]]) -> None:
    """Refuses (:class:`UsageError`) two of ``named`` (role, path, stat) that are one
    file: same ``st_dev`` and ``st_ino``, whatever links lead there. The roles are
    IN, OUT, stdin, stdout (their path is ``-``) or a secret file's."""
    seen: dict[tuple[int, int], tuple[str, str]] = {}

    def label(role: str, path: str) -> str:
        return role if path == "-" else f"{role} {path}"

    for role, path, st in named:
        if st is None:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            first_role, first_path = seen[ident]
            writer = next((r for r in (first_role, role) if r in ("OUT", "stdout")), None)
            if writer is not None:
                why = f"{writer} would overwrite {first_role if writer == role else role}"
            else:
                why = "a file cannot be its own key"
            raise UsageError(
                f"{label(first_role, first_path)} and {label(role, path)} are the same file; refusing ({why})"
            )
        seen[ident] = (role, path)


def _stat(path: str) -> os.stat_result | None:
    """``os.stat(path)`` (following links), or None if there is nothing to stat yet."""
    try:
        return os.stat(path)
    except OSError:
        return None


def _stat_or_std(path: str, stream: IO[Any] | None) -> os.stat_result | None:
    """What ``path`` names: for ``-``, the file behind ``stream`` (stdin or stdout)."""
    if path != "-":
        return _stat(path)
    try:
        return os.fstat(stream.fileno()) if stream is not None else None
    except (OSError, ValueError):  # closed, or not a real file (io.UnsupportedOperation)
        return None


def _check_output(path: str, command: str) -> None:
    """OUT must be a new path or an existing regular file: never a symbolic link
    (it would be followed by a writer, or replaced by a rename), never a device,
    FIFO, socket or directory (a rename would replace the node itself)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # e.g. a missing directory: the writer reports it with its path
    if stat.S_ISREG(st.st_mode):
        return
    from ._files import describe_mode

    kind = describe_mode(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"OUT {path} is a symbolic link; refusing to follow or replace it (name the file itself)"
        )
    if command == "open" and not stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"OUT {path} is {kind}, not a regular file; to write the plaintext there, "
            f"use '-' and redirect: exitless open IN - > {path}"
        )
    raise UsageError(f"OUT {path} is {kind}; {command} writes a new path or a regular file")


def _check_sealed_input(path: str, command: str) -> None:
    """A sealed file is read from a regular file (its end is checked first); a FIFO
    or a device is refused before anything blocks on it."""
    st = os.stat(path)  # a missing file: FileNotFoundError, with its path
    if not stat.S_ISREG(st.st_mode):
        from ._files import describe_mode

        raise UsageError(f"IN {path} is {describe_mode(st.st_mode)}; {command} reads a sealed regular file")


def _wait_for_writer(fd: int, path: str, timeout: float) -> bytes:
    """Waits up to ``timeout`` seconds for a writer on the FIFO open (non-blocking)
    as ``fd``. Returns the bytes read while finding out (at most 1), or raises
    :class:`ExitlessError` if no writer came."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    # On Linux a reader that has never seen a writer gets no POLLHUP: poll() returns
    # when a writer wrote (POLLIN) or came and went (POLLHUP), or on the timeout.
    if poller.poll(max(0, int(timeout * 1000))):
        return b""
    try:
        first = os.read(fd, 1)
    except BlockingIOError:
        return b""  # a writer holds it open but has not written yet
    if first:
        return first
    raise ExitlessError(
        f"IN {path} is a FIFO with no writer (waited {timeout:g} s; see --fifo-wait); "
        "start the writer first, or pipe into 'exitless seal - OUT'"
    )


def _open_input(path: str, fifo_wait: float) -> tuple[IO[bytes], bytes]:
    """The plaintext input of ``seal`` and the bytes already read from it: a regular
    file, or a FIFO once it has a writer. Opening never blocks (``O_NONBLOCK``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        prefix = b""
        if stat.S_ISFIFO(st.st_mode):
            prefix = _wait_for_writer(fd, path, fifo_wait)
        elif not stat.S_ISREG(st.st_mode):
            from ._files import describe_mode

            raise UsageError(
                f"IN {path} is {describe_mode(st.st_mode)}; to seal it, use '-' and redirect: exitless seal - OUT < {path}"
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb"), prefix
    except BaseException:
        os.close(fd)
        raise


def _key(args: argparse.Namespace) -> Key:
    path = args.key or os.environ.get("EXITLESS_KEY_FILE")
    if not path:
        raise ValueError(
            "no key: pass --key FILE (or set EXITLESS_KEY_FILE; create one with `exitless keygen -o FILE`), or --kms URI"
        )
    return Key.load(path)


def _keygen(args: argparse.Namespace) -> None:
    key = Key.generate()
    try:
        key.save(args.out)
    except FileExistsError:
        raise FileExistsError(f"{args.out} already exists; refusing to overwrite a key file") from None
    print(f"wrote key {key.key_id.hex()} to {args.out} (mode 0600)")


def _writer(args: argparse.Namespace) -> Any:
    """The sealed output: under a key file (format version 1), or under a fresh data
    key wrapped by the KMS and carried in the header (version 2)."""
    options = {"segment_size": args.segment_size, "algorithm": args.algorithm, "sync": True}
    if args.kms:
        if args.key:
            raise ValueError("pass either --key or --kms, not both")
        from .kms import open_kms, open_sealed

        with open_kms(args.kms) as kms:
            return open_sealed(args.output, "wb", kms, args.context, **options)
    return open_spill(args.output, "wb", _key(args), args.context, **options)


def _reader(args: argparse.Namespace) -> Any:
    if args.kms:
        if args.key:
            raise ValueError("pass either --key or --kms, not both")
        from .kms import open_kms, open_sealed

        with open_kms(args.kms) as kms:
            return open_sealed(args.input, "rb", kms, args.context)
    return open_spill(args.input, "rb", _key(args), args.context)


def _seal(args: argparse.Namespace) -> None:
    if args.input == "-" and sys.stdin is None:
        raise ExitlessError("IN is '-' but stdin is closed")
    if not args.kms:
        _key(args)  # a missing key is a usage error before anything is opened
    if args.output == "-":
        raise UsageError("OUT is '-', but seal writes a sealed regular file, not stdout; name the file")
    _check_output(args.output, "seal")
    _check_distinct(
        [
            ("stdin" if args.input == "-" else "IN", args.input, _stat_or_std(args.input, sys.stdin)),
            ("OUT", args.output, _stat(args.output)),
            *_named_key_files(args),
        ]
    )
    with _SignalCleanup() as cleanup:
        if args.input == "-":
            src, prefix = sys.stdin.buffer, b""
        else:
            src, prefix = _open_input(args.input, args.fifo_wait)
        try:
            with cleanup.deferred():
                out = _writer(args)
                cleanup.track(args.output)
            try:
                with out:
                    out.write(prefix)
                    shutil.copyfileobj(src, out, CHUNK)
            except BaseException:
                cleanup.remove()  # OUT: the regular file (or new path) the writer opened
                raise
            cleanup.untrack(args.output)
        finally:
            if src is not sys.stdin.buffer:
                src.close()


class _ReadsInto(Protocol):
    """A binary file that reads into a buffer (a sealed reader, a raw or buffered file)."""

    def readinto(self, buffer: bytearray, /) -> int | None: ...


def _copy_to_fd(src: _ReadsInto, fd: int) -> None:
    """Copies ``src`` to the file descriptor ``fd`` until every byte is written.

    A blocking write to a pipe or socket that is interrupted after some bytes
    returns short: by a signal, or once after any io_uring ring of this process is
    closed (the kernel queues the ring's exit work as signal-like task work).
    CPython's buffered writers pass that short count on and ``shutil.copyfileobj``
    ignores it, which lost the tail of ``exitless open S -`` now and then; here the
    rest is written again."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        chunk = view[:n]
        while chunk:
            chunk = chunk[os.write(fd, chunk) :]


def _open(args: argparse.Namespace) -> None:
    if args.output == "-" and sys.stdout is None:
        raise ExitlessError("OUT is '-' but stdout is closed")
    _check_sealed_input(args.input, "open")
    if args.output != "-":
        _check_output(args.output, "open")
    _check_distinct(
        [
            ("IN", args.input, _stat(args.input)),
            ("stdout" if args.output == "-" else "OUT", args.output, _stat_or_std(args.output, sys.stdout)),
            *_named_key_files(args),
        ]
    )
    with _SignalCleanup() as cleanup, _reader(args) as src:
        if args.output == "-":
            # The final segment was checked at open; a later bad segment stops the copy
            # with an error and a non-zero exit.
            sys.stdout.flush()
            _copy_to_fd(src, sys.stdout.fileno())
            return
        # Plaintext appears under OUT only once every segment has authenticated.
        out_dir = os.path.dirname(os.path.abspath(args.output))
        with cleanup.deferred():
            fd, tmp = tempfile.mkstemp(prefix=".exitless-open-", dir=out_dir)
            cleanup.track(tmp)
        try:
            try:
                _copy_to_fd(src, fd)
            finally:
                os.close(fd)
            _check_output(args.output, "open")  # again: nothing was swapped in meanwhile
            os.replace(tmp, args.output)
            cleanup.untrack(tmp)
        except BaseException:
            cleanup.remove()
            raise


def _inspect(args: argparse.Namespace) -> None:
    _check_sealed_input(args.file, "inspect")
    info = inspect(args.file)
    fields = {
        "path": info.path,
        "format_version": info.version,
        "algorithm": info.algorithm,
        "segment_size": info.segment_size,
        "key_id": info.key_id.hex() if any(info.key_id) else None,
        "file_size": info.file_size,
        "segments": info.segments,
        "plaintext_size": info.plaintext_size,
    }
    if args.json:
        print(json.dumps(fields))
    else:
        width = max(map(len, fields))
        for name, value in fields.items():
            print(f"{name:<{width}}  {value if value is not None else '(none)'}")
        print("(header facts only; nothing is authenticated without the key)")


def _kms_uri(args: argparse.Namespace) -> str:
    uri = args.kms or os.environ.get("EXITLESS_KMS")
    if not uri:
        raise ValueError(
            "no KMS: pass --kms URI (local:PATH or pkcs11:module=...;token=...;pin-env=VAR), or set EXITLESS_KMS"
        )
    return str(uri)


def _kms_init(args: argparse.Namespace) -> None:
    from .kms import LocalKms, open_kms

    uri = _kms_uri(args)
    if uri.startswith("local:"):
        path = uri[len("local:") :]
        if not path:
            raise ValueError("'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json")
        try:
            keyring = LocalKms.init(path)
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; refusing to overwrite a keyring") from None
        with keyring:
            print(f"created keyring {path} (mode 0600) with primary key {keyring.current_key_id.hex()}")
        return
    with open_kms(uri) as kms:
        if kms.list_keys():
            print(f"{kms.uri} already holds primary keys; current is {kms.current_key_id.hex()}")
            return
        print(f"created primary key {kms.create_key().hex()} in {kms.uri}")


def _kms_create(args: argparse.Namespace) -> None:
    from .kms import open_kms

    with open_kms(_kms_uri(args)) as kms:
        key_id = kms.rotate() if args.kms_command == "rotate" else kms.create_key()
        print(
            f"{'rotated to' if args.kms_command == 'rotate' else 'created'} primary key {key_id.hex()} (now current)"
        )


def _kms_list(args: argparse.Namespace) -> None:
    from .kms import open_kms

    with open_kms(_kms_uri(args)) as kms:
        keys = kms.list_keys()
    rows = [
        {
            "key_id": k.key_id.hex(),
            "created": k.created.isoformat() if k.created else None,
            "current": k.current,
        }
        for k in keys
    ]
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(f"{r['key_id']}  {r['created'] or 'created: unknown'}{'  current' if r['current'] else ''}")


def _segment_size(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 256 <= value <= 1 << 30:
        raise argparse.ArgumentTypeError(f"must be between 256 and {1 << 30} bytes, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exitless", description="Sealed (encrypted, authenticated) spill files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    k = sub.add_parser(
        "keygen",
        help="create a random 32-byte key file (mode 0600)",
        description="Create a random data key in a new file with mode 0600.",
    )
    k.add_argument("-o", "--out", required=True, help="key file to create (must not exist)")
    k.set_defaults(func=_keygen)

    def keyed(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-k",
            "--key",
            help="key file: a regular file of yours (or root's), mode 0600, not a symbolic link (default: $EXITLESS_KEY_FILE)",
        )
        sp.add_argument(
            "--kms",
            help="KMS URI instead of a key file (local:PATH or pkcs11:...): the file's data key is wrapped by the KMS and carried in its header",
        )
        sp.add_argument(
            "-c", "--context", default="", help="context string binding the file to its role (default: empty)"
        )

    s = sub.add_parser(
        "seal",
        help="encrypt IN into the sealed file OUT",
        description="Seal IN into OUT. IN is a regular file, a FIFO (which gets --fifo-wait seconds to have a "
        "writer) or '-' for stdin; to seal a device, use '-' and redirect. OUT is a new path or a regular file "
        "(a symbolic link or a device is refused), and IN, OUT and the key file must be different files. "
        "OUT is removed if sealing fails, and on SIGINT, SIGTERM or SIGHUP (exit status 128+N). SIGKILL cannot "
        "be caught: it may leave an incomplete sealed OUT, which never reads back as a whole stream.",
    )
    s.add_argument("input", metavar="IN")
    s.add_argument("output", metavar="OUT")
    keyed(s)
    s.add_argument(
        "--segment-size",
        type=_segment_size,
        default=DEFAULT_SEGMENT_SIZE,
        help="ciphertext segment size in bytes (default 65536)",
    )
    s.add_argument("--algorithm", default="aes-256-gcm", choices=["aes-256-gcm", "chacha20-poly1305"])
    s.add_argument(
        "--fifo-wait",
        type=_seconds,
        default=FIFO_WAIT,
        metavar="SECONDS",
        help=f"if IN is a FIFO, how long to wait for a writer before giving up (default {FIFO_WAIT:g})",
    )
    s.set_defaults(func=_seal)

    o = sub.add_parser(
        "open",
        help="decrypt the sealed file IN into OUT",
        description="Open sealed IN into OUT ('-' for stdout). OUT appears only if every segment authenticates: "
        "the plaintext goes to a temporary .exitless-open-* file next to OUT, renamed over OUT at the end. OUT is "
        "a new path or a regular file; a symbolic link is refused, and so is a device or FIFO (use '-' and "
        "redirect). IN, OUT and the key file must be different files. On SIGINT, SIGTERM or SIGHUP the temporary "
        "file is removed (exit status 128+N). SIGKILL cannot be caught: it may leave a .exitless-open-* file next "
        "to OUT holding a prefix of the plaintext; delete it.",
    )
    o.add_argument("input", metavar="IN")
    o.add_argument("output", metavar="OUT")
    keyed(o)
    o.set_defaults(func=_open)

    i = sub.add_parser(
        "inspect",
        help="show a sealed file's header (never the key)",
        description="Show header facts of a sealed file. Needs no key; authenticates nothing.",
    )
    i.add_argument("file", metavar="FILE")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_inspect)

    m = sub.add_parser(
        "kms",
        help="primary keys in a KMS: init, create-key, rotate, list",
        description="Manage the primary keys that wrap data keys. The KMS is --kms URI or $EXITLESS_KMS: local:PATH (a 0600 keyring file) or pkcs11:module=...;token=...;pin-env=VAR.",
    )
    msub = m.add_subparsers(dest="kms_command", required=True, metavar="KMS_COMMAND")
    for name, func, text in (
        (
            "init",
            _kms_init,
            "create a local keyring with one primary key (or a first key in a PKCS#11 token)",
        ),
        ("create-key", _kms_create, "create a new primary key and make it current"),
        ("rotate", _kms_create, "make a new current primary key; older keys still unwrap"),
        ("list", _kms_list, "list primary keys (ids and dates, never key bytes)"),
    ):
        c = msub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        c.add_argument("--kms", help="KMS URI (default: $EXITLESS_KMS)")
        if name == "list":
            c.add_argument("--json", action="store_true", help="print one JSON array")
        c.set_defaults(func=func)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status = args.func(args)
    except UsageError as e:
        print(f"exitless {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ExitlessError, OSError, ValueError, TypeError) as e:
        command = args.command if args.command != "kms" else f"kms {args.kms_command}"
        print(f"exitless {command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"exitless {args.command}: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"exitless {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
