"""exitless: encrypted, exit-less spill IO for Spark executors in SGX enclaves.

The Python face of the native core:

- :func:`open_spill` — sealed spill files as :mod:`io` file objects
  (:class:`SealedWriter`, :class:`SealedReader`, :class:`SealedSpillFile`), and
  :func:`unlink` to delete one through the same backend (no exit on io_uring).
- :func:`generate_key`, :class:`Key` — 32-byte data keys that never print.
- :func:`seal_bytes`, :func:`open_bytes` (and ``_into`` forms), :func:`inspect` — whole buffers, and
  key-less header facts.
- :func:`backends` — which IO backends (uring, ocall, switchless, sync) work here.
- :func:`resources`, :func:`release_backends` — live handles, backends and buffers
  (leak checks), and releasing the pooled ones.
- :class:`IntegrityError`, :class:`FormatError`, :class:`BackendUnavailableError`,
  :class:`ForkedStreamError`, :class:`RejectedCompletionError` (all :class:`ExitlessError`).

The byte format is specified in docs/FORMAT.md.
"""

from ._errors import (
    BackendUnavailableError,
    ExitlessError,
    ForkedStreamError,
    FormatError,
    IntegrityError,
    RejectedCompletionError,
)
from .keys import Key, generate_key
from .memory import FileInfo, inspect, open_bytes, open_into, seal_bytes, seal_into, sealed_length
from .streams import (
    SealedReader,
    SealedSpillFile,
    SealedWriter,
    backends,
    open_spill,
    release_backends,
    resources,
    unlink,
)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "ExitlessError",
    "FileInfo",
    "ForkedStreamError",
    "FormatError",
    "IntegrityError",
    "Key",
    "RejectedCompletionError",
    "SealedReader",
    "SealedSpillFile",
    "SealedWriter",
    "backends",
    "generate_key",
    "inspect",
    "open_bytes",
    "open_into",
    "open_spill",
    "release_backends",
    "resources",
    "seal_bytes",
    "seal_into",
    "sealed_length",
    "unlink",
]
