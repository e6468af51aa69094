"""Sizes as people read them, shared by the report and the plots."""

from __future__ import annotations


def size_label(n: int) -> str:
    """4096 → "4 KiB", 1048576 → "1 MiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"
