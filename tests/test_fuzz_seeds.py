"""The atheris target for the Python reader (fuzz/python/fuzz_reader.py) as a
regression test: its checks run on every committed seed (fuzz/seeds/python) and on
hypothesis-made mutations of them. ``make fuzz`` runs the real fuzzer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "fuzz/seeds/python").iterdir())


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_reader", ROOT / "fuzz/python/fuzz_reader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HARNESS = _harness()


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_seed(path: Path) -> None:
    HARNESS.test_one_input(path.read_bytes())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
    cut=st.integers(min_value=0),
)
def test_mutated_seed(seed: Path, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed.read_bytes())
    for pos, value in edits:
        data[pos % len(data)] = value
    HARNESS.test_one_input(bytes(data[: len(data) - cut % 64]))
