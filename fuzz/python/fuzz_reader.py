"""atheris target: the Python reader, ``exitless.open_spill(path, "rb", ...)``, over
arbitrary files.

Input: ``selector (1) ‖ file``. Selector bits 0-1 pick the context (the test
vectors' key and contexts, as the Rust targets do, so the seeds in
``fuzz/seeds/python`` open), bit 2 the backend (``sync`` or ``ocall`` at 0 cycles),
bits 3-7 the size of the first read.

Checked: the only exceptions are ``IntegrityError``, ``FormatError``, ``ValueError``
and ``OSError``; ``exitless.open_bytes`` over the same bytes (the C ABI's in-memory
path) agrees: it refuses exactly the files the reader refuses, and returns exactly
the bytes the reader returns; ``exitless.inspect`` raises only those exceptions too.

Run: ``make fuzz-python`` (or ``python fuzz/python/fuzz_reader.py CORPUS_DIR SEED_DIR
-max_total_time=60``). Without atheris, ``test_one_input`` is a plain function the
regression test (tests/test_fuzz_seeds.py) calls on every seed.
"""

from __future__ import annotations

import os
import sys
import tempfile

try:
    import atheris
except ImportError:  # the regression test imports this module without atheris
    atheris = None

if atheris is not None:
    with atheris.instrument_imports():
        import exitless
else:
    import exitless

KEY = bytes(range(32))
CONTEXTS = (b"", b"app-7/shuffle-3/partition-12", b"spill", b"vector-5")
ALLOWED = (exitless.IntegrityError, exitless.FormatError, ValueError, OSError)

_shm = "/dev/shm"
_PATH = os.path.join(_shm if os.path.isdir(_shm) else tempfile.gettempdir(), f"exitless-fuzz-py-{os.getpid()}")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, file = data[0], data[1:]
    context = CONTEXTS[selector & 3]
    backend = "ocall" if selector & 4 else "sync"
    first = 1 + (selector >> 3) * 97
    with open(_PATH, "wb") as f:
        f.write(file)

    try:
        exitless.inspect(_PATH)
    except ALLOWED:
        pass

    got = bytearray()
    refused: BaseException | None = None
    try:
        with exitless.open_spill(_PATH, "rb", KEY, context, backend=backend, ocall_cycles=0) as r:
            size = r.size
            got += r.read(first)
            got += r.read()
            assert len(got) == size, f"read {len(got)} bytes of a {size}-byte stream"
            r.seek(len(got) // 2)
            assert r.read() == bytes(got[len(got) // 2 :]), "a seek and read gave other bytes"
    except ALLOWED as e:
        refused = e

    try:
        expected = exitless.open_bytes(file, KEY, context)
    except ALLOWED as e:
        if refused is None:
            raise AssertionError(f"open_spill accepted a stream open_bytes refuses ({e!r})") from e
        assert type(e) is type(refused), f"open_spill raised {refused!r}, open_bytes {e!r}"
        return
    if refused is not None:
        raise AssertionError(f"open_spill refused a stream open_bytes opens ({refused!r})") from refused
    assert bytes(got) == expected, "open_spill and open_bytes returned different plaintext"


def main() -> None:
    if atheris is None:
        sys.exit("atheris is not installed: `make fuzz-python` installs it into .venv")
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        if os.path.exists(_PATH):
            os.unlink(_PATH)


if __name__ == "__main__":
    main()
