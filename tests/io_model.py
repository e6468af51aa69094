"""How a sealed stream cuts its writes (the rule in native/spill/src/memory.rs and
pipe.rs), for the tests that count IOs and modeled exits exactly."""

from __future__ import annotations

from exitless._native import lib


def write_sizes(segments: list[int], segment_size: int) -> list[int]:
    """The length of each write a stream makes whose segments occupy ``segments``
    bytes on disk, in order: one segment per write below EXITLESS_COALESCE_AFTER,
    then as many consecutive segments as fit EXITLESS_IO_SIZE (segments of an IO or
    more are not gathered)."""
    io, after = lib.EXITLESS_IO_SIZE, lib.EXITLESS_COALESCE_AFTER
    n = len(segments)
    single = min(n, -(-after // segment_size)) if segment_size < io else n
    per_io = max(io // segment_size, 1)
    return segments[:single] + [sum(segments[i : i + per_io]) for i in range(single, n, per_io)]
