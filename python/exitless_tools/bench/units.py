"""Sizes as people read them, shared by the report and the plots; and checked reads
of the records (``dict[str, object]``) the measurements pass around."""

from __future__ import annotations

from collections.abc import Mapping


def size_label(n: int) -> str:
    """4096 → "4 KiB", 1048576 → "1 MiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def as_int(record: Mapping[str, object], key: str, default: int | None = None) -> int:
    """``record[key]`` (a counter, a count), checked to be an integer; ``default`` if
    given and the key is absent."""
    if default is not None and key not in record:
        return default
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is {value!r}, not an integer")
    return value


def as_float(record: Mapping[str, object], key: str) -> float:
    """``record[key]`` (seconds, a rate), checked to be a number."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{key} is {value!r}, not a number")
    return float(value)


def as_record(record: Mapping[str, object], key: str) -> dict[str, object]:
    """``record[key]``, checked to be a nested record (a dict)."""
    value = record[key]
    if not isinstance(value, dict):
        raise TypeError(f"{key} is {value!r}, not a record")
    return value
