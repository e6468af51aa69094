"""The benchmark runs (quick) and its JSON holds the deterministic facts: exit
counts follow the OCALL model exactly, io_uring makes far fewer exits, and every
point reports the fields the report needs. Times are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEG = 65536
MIB = 8


def test_quick_io_matrix_json(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "exitless.bench", "--suite", "io", "--quick", "--segments", str(SEG),
         "--io-size-mib", str(MIB), "--io-dir", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    files = list(out.glob("*/io.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text())
    assert report["benchmark"] == "io" and report["bytes_per_point"] == MIB << 20
    for field in ("cpu", "cpu_flags", "cores", "kernel", "commit"):
        assert field in report["machine"]
    rows = {(r["point"], r["sealed"]): r for r in report["rows"]}
    labels = {"uring-direct", "uring-direct-spin", "uring-buffered", "switchless", "switchless-direct", "ocall-8200", "ocall-17000",
              "ocall-8200-direct", "sync", "sync-direct"}
    assert {p for p, _ in rows} == labels
    for r in report["rows"]:
        for field in ("gb_per_s", "segments_per_s", "exits", "exits_per_gib", "cpu_s_per_gib", "sqpoll_cpu_s_per_gib", "direct"):
            assert field in r, field
        assert r["gb_per_s"] > 0 and r["cpu_s_per_gib"] >= 0

    # Sealed: 8 MiB of plaintext in 64 KiB segments; the final one is short.
    import exitless

    file_len = exitless.sealed_length(MIB << 20, SEG)
    segments = -(-file_len // SEG)
    final = file_len - (segments - 1) * SEG
    # One modeled exit per pwrite up to 16 KiB, three above (Occlum's SDK bounce path).
    expected = 3 * (segments - 1) + (3 if final > 16384 else 1)
    for label in ("ocall-8200", "ocall-17000"):
        st = rows[(label, True)]["stats"]
        assert st["segments"] == segments
        assert st["exits"] == expected, (label, st)
    assert rows[("ocall-8200", True)]["exits"] == rows[("ocall-17000", True)]["exits"], "the model changes time, not counts"
    assert rows[("sync", True)]["stats"]["exits"] == 0
    sw = rows[("switchless", True)]["stats"]
    assert sw["exits"] == sw["fallbacks"]
    # Plaintext rows: one 64 KiB write per segment slot.
    assert rows[("ocall-8200", False)]["stats"]["exits"] == 3 * (MIB << 20) // SEG
    # io_uring: exits only to attach/detach the file, wake SQPOLL or block after spinning.
    for label in ("uring-direct", "uring-direct-spin", "uring-buffered"):
        st = rows[(label, True)]["stats"]
        assert st["segments"] == segments and st["completions_rejected"] == 0
        assert st["exits"] < 3 * segments, (label, st)
    assert rows[("uring-direct", True)]["direct"] is True
    assert rows[("uring-buffered", True)]["direct"] is False
