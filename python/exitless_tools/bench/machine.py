"""The facts about the machine a benchmark ran on, for its JSON: CPU model and the
flags that decide AES-GCM speed, cores, kernel, io_uring features, the OCALL model
in force, library versions and the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from exitless import __version__
from exitless._native import ffi, lib

from .runtime import SOURCE_ROOT

#: CPU flags that decide sealing speed (AES-NI, vector AES, carry-less multiply, AVX).
CPU_FLAGS = ("aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx", "avx2", "avx512f", "avx512vl", "sha_ni")

#: Names of the ``IORING_FEAT_*`` bits, in bit order (``<linux/io_uring.h>``).
URING_FEATURES = (
    "single_mmap",
    "nodrop",
    "submit_stable",
    "rw_cur_pos",
    "cur_personality",
    "fast_poll",
    "poll_32bits",
    "sqpoll_nonfixed",
    "ext_arg",
    "native_workers",
    "rsrc_tags",
    "cqe_skip",
    "linked_file",
)

#: Where the modeled exit costs come from.
OCALL_SOURCE = (
    "Weisse, Bertacco, Austin: Regaining Lost Cycles with HotCalls, ISCA 2017 "
    "(8,200-17,000 cycles per enclave exit and re-entry)"
)


def cpu() -> tuple[str, dict[str, bool]]:
    """The CPU model and which of :data:`CPU_FLAGS` it has (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return model, {f: f in flags for f in CPU_FLAGS}


def io_uring() -> dict[str, object]:
    """Whether io_uring (SQPOLL) works here, why not, and the features the kernel reports."""
    if lib.exitless_uring_available() != lib.EXITLESS_OK:
        reason = ffi.string(lib.exitless_last_error_message()).decode(errors="replace")
        return {"available": False, "reason": reason, "features": [], "features_mask": 0}
    mask = ffi.new("uint32_t *")
    if lib.exitless_uring_features(mask) != lib.EXITLESS_OK:
        reason = ffi.string(lib.exitless_last_error_message()).decode(errors="replace")
        return {"available": False, "reason": reason, "features": [], "features_mask": 0}
    bits = int(mask[0])
    return {
        "available": True,
        "reason": None,
        "features_mask": bits,
        "features": [name for i, name in enumerate(URING_FEATURES) if bits >> i & 1],
    }


def ocall_model() -> dict[str, object]:
    """The OCALL cost model in force (``EXITLESS_OCALL_CYCLES``/``_TRIPLE``) and the TSC rate."""
    m = ffi.new("ExitlessOcallModel *")
    if lib.exitless_ocall_model(m) != lib.EXITLESS_OK:  # pragma: no cover - cannot fail today
        raise RuntimeError(ffi.string(lib.exitless_last_error_message()).decode(errors="replace"))
    return {
        "cycles_per_exit": int(m.cycles_per_exit),
        "triple_exits_above_16k": bool(m.triple_above_16k),
        "tsc_ticks_per_ns": round(float(m.tsc_ticks_per_ns), 4),
        "tsc_calibrated": bool(m.calibrated),
        "ns_per_exit": round(float(m.ns_per_exit), 1),
        "source": OCALL_SOURCE,
    }


def sqpoll_tasks() -> list[Path]:
    """The ``/proc/self/task`` entries of this process's io_uring SQPOLL kernel threads (``iou-sqp-*``)."""
    tasks = []
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().startswith("iou-sqp"):
                tasks.append(task)
        except OSError:  # the thread ended meanwhile
            continue
    return tasks


def sqpoll_threads() -> int:
    """io_uring SQPOLL kernel threads this process has now."""
    return len(sqpoll_tasks())


def commit() -> str:
    """The source tree's short commit, ``-dirty`` when tracked files changed, or "unknown"."""
    try:

        def run(*a: str) -> str:
            return subprocess.run(
                ["git", *a], cwd=SOURCE_ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()

        head = run("rev-parse", "--short", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> dict[str, object]:
    """Everything above in one dict (the ``machine`` object of the results JSON)."""
    model, flags = cpu()
    try:
        import cryptography

        crypto_version: str | None = cryptography.__version__
    except ImportError:
        crypto_version = None
    return {
        "cpu": model,
        "cpu_flags": sorted(f for f, on in flags.items() if on),  # kept as a list for older readers
        "cpu_has": flags,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cryptography": crypto_version,
        "exitless": __version__,
        "commit": commit(),
        "io_uring": io_uring(),
        "ocall_model": ocall_model(),
    }
