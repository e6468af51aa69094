"""The stream options are defined once (exitless.streams: ReaderOptions, SealOptions,
WriterOptions and their defaults) and every function that takes them keeps the
signature it had when each spelled them out: the same keywords, defaults and order
for help() and inspect.signature, and Python's own TypeError for any other keyword."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import exitless
from exitless.streams import make_options

KEY = bytes(range(32))

_READER = (
    "backend: 'str' = 'auto', queue_depth: 'int' = 8, direct: 'bool | None' = None, "
    "ocall_cycles: 'int | None' = None, uring_spin_us: 'int | None' = None, "
    "uring_sqpoll: 'bool | None' = None"
)
_WRITER = (
    "segment_size: 'int' = 65536, algorithm: 'str' = 'aes-256-gcm', key_id: 'bytes | None' = None, "
    f"sync: 'bool' = False, {_READER}, parallel: 'bool' = True, envelope: 'Buffer | None' = None, "
    "faults: 'str | None' = None, _insecure_fixed_randomness: 'tuple[bytes, bytes] | None' = None"
)
_SEAL = (
    "segment_size: 'int' = 65536, algorithm: 'str' = 'aes-256-gcm', key_id: 'bytes | None' = None, "
    "envelope: 'Buffer | None' = None"
)
# As each function spelled its options out before they were defined once.
SIGNATURES = {
    exitless.open_spill: "(path: 'PathLike', mode: 'str', key: 'KeyLike', context: 'bytes | str' = b'', "
    f"*, {_WRITER}) -> 'SealedWriter | SealedReader | SealedSpillFile'",
    exitless.SealedWriter: f"(path: 'PathLike', key: 'KeyLike', context: 'bytes | str' = b'', *, {_WRITER}) -> 'None'",
    exitless.SealedReader: "(path: 'PathLike', key: 'KeyLike', context: 'bytes | str' = b'', *, "
    f"{_READER}, faults: 'str | None' = None) -> 'None'",
    exitless.seal_into: "(data: 'ReadableBuffer', out: 'WriteableBuffer', key: 'KeyLike', "
    f"context: 'bytes | str' = b'', *, {_SEAL}) -> 'int'",
    exitless.seal_bytes: f"(data: 'ReadableBuffer', key: 'KeyLike', context: 'bytes | str' = b'', *, {_SEAL}) -> 'bytes'",
}


@pytest.mark.parametrize("function", SIGNATURES, ids=lambda f: f.__name__)
def test_signatures_spell_out_each_option_with_its_default(function: object) -> None:
    assert callable(function)
    assert str(inspect.signature(function)) == SIGNATURES[function]


def test_docstrings_stay() -> None:
    assert (exitless.open_spill.__doc__ or "").startswith("Open a sealed spill file.")
    assert (exitless.SealedWriter.__init__.__doc__ or "") == ""  # as before: the class says it
    assert (exitless.seal_bytes.__doc__ or "").startswith("Seal ``data`` into a complete sealed stream")


def test_an_unknown_keyword_is_pythons_type_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    cases = {
        "open_spill": lambda: exitless.open_spill(path, "wb", KEY, segment=4096),
        "SealedWriter.__init__": lambda: exitless.SealedWriter(path, KEY, queue=1),
        "SealedReader.__init__": lambda: exitless.SealedReader(path, KEY, segment_size=4096),
        "seal_bytes": lambda: exitless.seal_bytes(b"x", KEY, backend="sync"),
        "seal_into": lambda: exitless.seal_into(b"x", bytearray(200), KEY, parallel=False),
        "make_options": lambda: make_options(faults="eio@fsync"),
    }
    for where, call in cases.items():
        with pytest.raises(TypeError, match=rf"^{where}\(\) got an unexpected keyword argument '\w+'$"):
            call()
    assert not path.exists()


def test_named_parameters_still_go_by_keyword(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with exitless.open_spill(path=path, mode="wb", key=KEY, context="c", segment_size=4096) as w:
        w.write(b"hello")
    with exitless.SealedReader(path=path, key=KEY, context="c", backend="sync") as r:
        assert r.read() == b"hello"
    assert exitless.open_bytes(exitless.seal_bytes(data=b"x", key=KEY, context="c"), KEY, "c") == b"x"


def test_reading_ignores_the_writer_options_open_spill_takes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with exitless.open_spill(path, "wb", KEY, segment_size=4096, sync=True, backend="sync") as w:
        w.write(b"data")
    # As before: open_spill takes every option in every mode; a reader uses its own.
    with exitless.open_spill(path, "rb", KEY, segment_size=1, algorithm="x", backend="sync") as r:
        assert r.read() == b"data"
    assert exitless.inspect(path).segment_size == 4096


def test_make_options_takes_segment_size_first_and_any_other_by_keyword() -> None:
    opts = make_options(4096, backend="sync", queue_depth=3, parallel=False, key_id=bytes(16))
    assert (opts.segment_size, opts.queue_depth, opts.parallel, opts.has_key_id) == (4096, 3, 0, 1)
    defaults = make_options()
    assert (defaults.segment_size, defaults.queue_depth, defaults.parallel, defaults.direct) == (
        65536,
        8,
        1,
        -1,
    )
