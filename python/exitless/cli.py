"""The ``exitless`` command: keygen, seal, open, inspect, and ``kms`` (init,
create-key, rotate, list) for primary keys in a KMS (:mod:`exitless.kms`).

Every failure is one line on stderr and a non-zero exit status (1 for a bad file,
key or IO error; 2 for bad usage). Keys come from key files (``exitless keygen``),
never from the command line, so they stay out of shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from typing import Any
from pathlib import Path

from . import ExitlessError, Key, inspect, open_spill
from .streams import DEFAULT_SEGMENT_SIZE

CHUNK = 1 << 20


def _key(args: argparse.Namespace) -> Key:
    path = args.key or os.environ.get("EXITLESS_KEY_FILE")
    if not path:
        raise ValueError("no key: pass --key FILE (or set EXITLESS_KEY_FILE; create one with `exitless keygen -o FILE`), or --kms URI")
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
    if not args.kms:
        _key(args)  # a missing key is a usage error before anything is opened
    src = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    out = None
    try:
        out = _writer(args)
        with out:
            shutil.copyfileobj(src, out, CHUNK)
    except BaseException:
        # Remove only what this run created: a regular file the writer had opened.
        if out is not None and stat.S_ISREG(os.lstat(args.output).st_mode):
            Path(args.output).unlink(missing_ok=True)
        raise
    finally:
        if src is not sys.stdin.buffer:
            src.close()


def _open(args: argparse.Namespace) -> None:
    with _reader(args) as src:
        if args.output == "-":
            # The final segment was checked at open; a later bad segment stops the copy
            # with an error and a non-zero exit.
            shutil.copyfileobj(src, sys.stdout.buffer, CHUNK)
            sys.stdout.buffer.flush()
            return
        # Plaintext appears under OUT only once every segment has authenticated.
        out_dir = os.path.dirname(os.path.abspath(args.output))
        fd, tmp = tempfile.mkstemp(prefix=".exitless-open-", dir=out_dir)
        try:
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            os.replace(tmp, args.output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _inspect(args: argparse.Namespace) -> None:
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
        raise ValueError("no KMS: pass --kms URI (local:PATH or pkcs11:module=...;token=...;pin-env=VAR), or set EXITLESS_KMS")
    return str(uri)


def _kms_init(args: argparse.Namespace) -> None:
    from .kms import LocalKms, open_kms

    uri = _kms_uri(args)
    if uri.startswith("local:"):
        path = uri[len("local:"):]
        if not path:
            raise ValueError("'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json")
        try:
            kms = LocalKms.init(path)
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; refusing to overwrite a keyring") from None
        with kms:
            print(f"created keyring {path} (mode 0600) with primary key {kms.current_key_id.hex()}")
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
        print(f"{'rotated to' if args.kms_command == 'rotate' else 'created'} primary key {key_id.hex()} (now current)")


def _kms_list(args: argparse.Namespace) -> None:
    from .kms import open_kms

    with open_kms(_kms_uri(args)) as kms:
        keys = kms.list_keys()
    rows = [
        {"key_id": k.key_id.hex(), "created": k.created.isoformat() if k.created else None, "current": k.current}
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exitless", description="Sealed (encrypted, authenticated) spill files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    k = sub.add_parser("keygen", help="create a random 32-byte key file (mode 0600)", description="Create a random data key in a new file with mode 0600.")
    k.add_argument("-o", "--out", required=True, help="key file to create (must not exist)")
    k.set_defaults(func=_keygen)

    def keyed(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-k", "--key", help="key file (default: $EXITLESS_KEY_FILE)")
        sp.add_argument("--kms", help="KMS URI instead of a key file (local:PATH or pkcs11:...): the file's data key is wrapped by the KMS and carried in its header")
        sp.add_argument("-c", "--context", default="", help="context string binding the file to its role (default: empty)")

    s = sub.add_parser("seal", help="encrypt IN into the sealed file OUT", description="Seal IN ('-' for stdin) into OUT. OUT is removed if sealing fails.")
    s.add_argument("input", metavar="IN")
    s.add_argument("output", metavar="OUT")
    keyed(s)
    s.add_argument("--segment-size", type=_segment_size, default=DEFAULT_SEGMENT_SIZE, help="ciphertext segment size in bytes (default 65536)")
    s.add_argument("--algorithm", default="aes-256-gcm", choices=["aes-256-gcm", "chacha20-poly1305"])
    s.set_defaults(func=_seal)

    o = sub.add_parser("open", help="decrypt the sealed file IN into OUT", description="Open sealed IN into OUT ('-' for stdout). OUT appears only if every segment authenticates.")
    o.add_argument("input", metavar="IN")
    o.add_argument("output", metavar="OUT")
    keyed(o)
    o.set_defaults(func=_open)

    i = sub.add_parser("inspect", help="show a sealed file's header (never the key)", description="Show header facts of a sealed file. Needs no key; authenticates nothing.")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_inspect)

    m = sub.add_parser("kms", help="primary keys in a KMS: init, create-key, rotate, list", description="Manage the primary keys that wrap data keys. The KMS is --kms URI or $EXITLESS_KMS: local:PATH (a 0600 keyring file) or pkcs11:module=...;token=...;pin-env=VAR.")
    msub = m.add_subparsers(dest="kms_command", required=True, metavar="KMS_COMMAND")
    for name, func, text in (
        ("init", _kms_init, "create a local keyring with one primary key (or a first key in a PKCS#11 token)"),
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
        args.func(args)
    except (ExitlessError, OSError, ValueError, TypeError) as e:
        command = args.command if args.command != "kms" else f"kms {args.kms_command}"
        print(f"exitless {command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"exitless {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
