"""The quick stress run (docs/HARDENING.md, "Stress"): 100 concurrent streams from
16 threads for 5 s on each backend, then a 256 MiB stream, with every check of
``make stress`` (``python -m exitless_tools stress``): exact read-back, no stall, RSS
bounded and back near its start, no leaked descriptors, native counters at zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exitless_tools import stress


@pytest.mark.slow
@pytest.mark.stress
def test_quick_stress_run_passes_every_check(tmp_path):
    args = stress.parse_args(["--quick", "--out", str(tmp_path / "out"), "--dir", str(tmp_path)])
    results = stress.run(args)
    failed = {
        p["backend"]: {k: v for k, v in p["checks"].items() if not v} | {"errors": p["errors"]}
        for p in results["phases"]
        if not p["ok"]
    }
    assert not failed, failed
    assert results["big"]["ok"], results["big"]
    assert results["big"]["bytes"] == 256 << 20
    assert len(results["phases"]) >= 3  # ocall, switchless, sync (+ uring where it works)
    saved = json.loads(Path(results["path"]).read_text())
    assert saved["ok"] is True
