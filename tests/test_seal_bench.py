"""The seal-throughput comparison (exitless_tools.bench.seal): the shape of what it returns
and the report line it makes. A correctness test, not a timing test: no figure is
compared with anything."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cryptography")

from exitless_tools.bench.seal import SIZES, seal_throughput, summary_line


def test_seal_throughput_returns_figures_for_every_size() -> None:
    r = seal_throughput(total=2 << 20, reps=1)
    assert json.loads(json.dumps(r)) == r  # JSON-able as it is
    assert r["algorithm"] == "aes-256-gcm" and r["bytes_per_pass"] == 2 << 20 and r["reps"] == 1
    assert list(r["sizes"]) == [str(s) for s in SIZES] == ["4096", "65536", "1048576"]
    for row in r["sizes"].values():
        assert set(row) == {"stream", "per_call"}
        for view in row.values():
            assert set(view) == {"exitless_gbps", "cryptography_gbps", "ratio"}
            assert view["exitless_gbps"] > 0 and view["cryptography_gbps"] > 0
            # (the ratio is rounded to 3 decimals: 0.0005 apart at most, more than 1 % of a small one)
            assert view["ratio"] == pytest.approx(
                view["exitless_gbps"] / view["cryptography_gbps"], rel=0.01, abs=5e-4
            )
    assert r["call_overhead_us"]["exitless"] > 0 and r["call_overhead_us"]["cryptography"] > 0
    assert r["overhead_share"]["size"] == 4096 and 0 < r["overhead_share"]["exitless"] <= 1
    line = summary_line(r)
    assert line.startswith("Seal vs cryptography") and "4 KiB" in line and "1 MiB" in line


def test_summary_line_says_when_not_measured() -> None:
    assert summary_line(None) == "Seal vs cryptography: not measured"
    assert "no cryptography" in summary_line({"skipped": "no cryptography"})
    assert "FAILED: boom" in summary_line({"error": "boom"})
