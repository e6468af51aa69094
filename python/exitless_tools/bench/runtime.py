"""exitless-rt against tokio and OS threads: the Rust example ``rt_bench``, built
and run with cargo from the source tree (it needs the tree and a Rust toolchain;
without them the section is skipped with the reason)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[3]


def unavailable_reason() -> str | None:
    """Why the runtime benchmark cannot run here, or None."""
    if shutil.which("cargo") is None:
        return "cargo is not on PATH"
    if not (SOURCE_ROOT / "native" / "rt" / "examples" / "rt_bench.rs").is_file():
        return f"the exitless source tree is not at {SOURCE_ROOT} (exitless_tools runs from a checkout)"
    return None


def cargo_example(package: str, example: str, args: list[str], timeout: float = 900) -> dict[str, object]:
    """Builds (release) and runs a Rust benchmark example of the source tree; the
    JSON object it prints last, with the command line under ``"command"``."""
    cmd = ["cargo", "run", "--release", "-q", "-p", package, "--example", example, "--", *args]
    proc = subprocess.run(cmd, cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}: {tail}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["command"] = " ".join(cmd)
    return result


def run_rt_bench(runs: int, vcpus: int) -> dict[str, object]:
    """``rt_bench``: exitless-rt against tokio and OS threads."""
    return cargo_example("exitless-rt", "rt_bench", ["--runs", str(runs), "--vcpus", str(vcpus)])
