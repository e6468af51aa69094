"""Sealing throughput in memory: exitless's ``seal_into`` (the C ABI's
``exitless_seal_buffer``: AES-256-GCM from the crypto provider the host build uses)
against the ``cryptography`` package's AES-256-GCM (OpenSSL) ``encrypt_into``, in
one process, on the same plaintext, at 4 KiB, 64 KiB and 1 MiB.

Two views per size ``S``, each over ``total`` bytes per pass:

- ``stream``: one ``seal_into`` call seals the whole buffer in ``S``-byte segments;
  cryptography seals the same segments (same plaintext lengths), one call each.
- ``per_call``: one ``seal_into`` call per ``S``-byte buffer (a complete stream each,
  64 KiB segments: its own header, key derivation and key schedule); cryptography
  encrypts each ``S``-byte buffer with one call.

Buffers are allocated once and reused; one warm-up pass of each before timing; the
passes interleave exitless and cryptography so drift on a shared machine hits both
alike; each figure is the median of ``reps`` passes. ``call_overhead_us`` is the
median time of a call that seals nothing (an empty stream; an empty message):
what one call costs in Python, the C ABI, key derivation and key setup before any
byte is sealed. Benchmarks measure; nothing here asserts a time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from exitless import generate_key, open_into, seal_into, sealed_length

KiB, MiB = 1 << 10, 1 << 20
SIZES = (4 * KiB, 64 * KiB, MiB)
HEADER, TAG = 68, 16
PER_CALL_SEGMENT = 64 * KiB


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _chunks(total: int, segment_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each segment's plaintext in a stream of ``total`` bytes."""
    first, rest = segment_size - HEADER - TAG, segment_size - TAG
    return [(0, min(first, total))] + [(off, min(rest, total - off)) for off in range(first, total, rest)]


def seal_throughput(total: int = 16 * MiB, reps: int = 5, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """exitless vs cryptography AES-256-GCM sealing, GB/s and ratios (exitless /
    cryptography) per size; a JSON-able dict, or ``{"skipped": reason}`` without
    the ``cryptography`` package."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as e:
        return {"skipped": f"the cryptography package is not installed ({e})"}
    key = generate_key()
    aes = AESGCM(AESGCM.generate_key(256))
    data = memoryview(bytearray(os.urandom(total)))
    # Output buffers, one per view and side, allocated once and reused by every pass.
    ct = bytearray(total + TAG * len(_chunks(total, min(sizes))))
    plans = {}
    for size in sizes:
        chunks = _chunks(total, size)
        nonces = [os.urandom(4) + i.to_bytes(8, "big") for i in range(len(chunks))]
        slots, pos = [], 0
        for _, n in chunks:
            slots.append(memoryview(ct)[pos : pos + n + TAG])
            pos += n + TAG
        stride = sealed_length(size, PER_CALL_SEGMENT)
        calls = max(total // size, 1)  # per_call passes seal calls * min(size, total) bytes
        plans[size] = (chunks, nonces, slots, stride, calls)
    sealed = bytearray(max(sealed_length(total, s) for s in sizes))
    sealed_calls = bytearray(max(plans[s][3] * plans[s][4] for s in sizes))
    ct_calls = bytearray(max((s + TAG) * plans[s][4] for s in sizes))

    def runs(size: int) -> dict[str, Callable[[], object]]:
        chunks, nonces, slots, stride, calls = plans[size]
        msgs = [data[i * size : (i + 1) * size] for i in range(calls)]
        outs = [memoryview(sealed_calls)[i * stride : (i + 1) * stride] for i in range(calls)]
        cslots = [memoryview(ct_calls)[i * (size + TAG) : (i + 1) * (size + TAG)] for i in range(calls)]

        def x_stream() -> None:
            seal_into(data, sealed, key, segment_size=size)

        def c_stream() -> None:
            for (off, n), nonce, slot in zip(chunks, nonces, slots, strict=True):
                aes.encrypt_into(nonce, data[off : off + n], None, slot)

        def x_call() -> None:
            for m, o in zip(msgs, outs, strict=True):
                seal_into(m, o, key, segment_size=PER_CALL_SEGMENT)

        def c_call() -> None:
            for m, nonce, o in zip(msgs, nonces, cslots, strict=False):  # calls <= nonces
                aes.encrypt_into(nonce, m, None, o)

        return {"x_stream": x_stream, "c_stream": c_stream, "x_call": x_call, "c_call": c_call}

    fns = {size: runs(size) for size in sizes}
    for size in sizes:  # warm up: every buffer touched, every code path run once
        for fn in fns[size].values():
            fn()
    times: dict[int, dict[str, list[float]]] = {s: {name: [] for name in fns[s]} for s in sizes}
    empty_out = bytearray(sealed_length(0))
    empty_ct = bytearray(TAG)
    nonce0 = os.urandom(12)
    overhead: dict[str, list[float]] = {"exitless": [], "cryptography": []}
    n = 200
    for _ in range(reps):
        for size in sizes:
            for name, fn in fns[size].items():
                times[size][name].append(_seconds(fn))
        overhead["exitless"].append(_seconds(lambda: [seal_into(b"", empty_out, key) for _ in range(n)]) / n)
        overhead["cryptography"].append(
            _seconds(lambda: [aes.encrypt_into(nonce0, b"", None, empty_ct) for _ in range(n)]) / n
        )

    # Correctness of what was timed (not a timing check): the last stream opens, one
    # cryptography segment decrypts.
    back = bytearray(total)
    open_into(memoryview(sealed)[: sealed_length(total, sizes[-1])], back, key)
    chunks, nonces, slots, _, _ = plans[sizes[-1]]
    if back != data or aes.decrypt(nonces[0], bytes(slots[0]), None) != data[: chunks[0][1]]:
        raise AssertionError("sealed output does not open to the plaintext")

    def gbps(seconds: list[float], nbytes: int = total) -> float:
        return round(nbytes / statistics.median(seconds) / 1e9, 3)

    result: dict[str, Any] = {
        "algorithm": "aes-256-gcm",
        "bytes_per_pass": total,
        "reps": reps,
        "per_call_segment_size": PER_CALL_SEGMENT,
        "sizes": {},
    }
    for size in sizes:
        t = times[size]
        row = {}
        per_call_bytes = plans[size][4] * min(size, total)
        for view, x, c, nbytes in (
            ("stream", "x_stream", "c_stream", total),
            ("per_call", "x_call", "c_call", per_call_bytes),
        ):
            xs, cs = gbps(t[x], nbytes), gbps(t[c], nbytes)
            row[view] = {"exitless_gbps": xs, "cryptography_gbps": cs, "ratio": round(xs / cs, 3)}
        result["sizes"][str(size)] = row
    oh = {k: round(statistics.median(v) * 1e6, 2) for k, v in overhead.items()}
    result["call_overhead_us"] = oh
    smallest = min(sizes)
    per_call_us = statistics.median(times[smallest]["x_call"]) / plans[smallest][4] * 1e6
    # Share of one smallest-size exitless call spent before sealing any byte.
    result["overhead_share"] = {
        "size": smallest,
        "exitless": round(min(oh["exitless"] / per_call_us, 1.0), 3),
    }
    return result


def summary_line(seal: dict[str, Any] | None) -> str:
    """The one line of the text report."""
    if not seal:
        return "Seal vs cryptography: not measured"
    if "skipped" in seal or "error" in seal:
        return f"Seal vs cryptography: {seal.get('skipped') or 'FAILED: ' + str(seal.get('error'))}"
    parts = []
    for size, row in seal["sizes"].items():
        n = int(size)
        label = f"{n >> 20} MiB" if n >= MiB else f"{n >> 10} KiB"
        parts.append(f"{label} {row['stream']['ratio']:.2f} | {row['per_call']['ratio']:.2f}")
    share, oh = seal["overhead_share"], seal["call_overhead_us"]
    return (
        f"Seal vs cryptography AES-256-GCM in memory (exitless/cryptography, stream | one call per buffer): "
        f"{', '.join(parts)}; a call costs {oh['exitless']:.1f} µs before sealing a byte "
        f"(cryptography {oh['cryptography']:.1f}), {share['exitless']:.0%} of a {share['size'] >> 10} KiB call"
    )


if __name__ == "__main__":  # python -m exitless_tools.bench.seal: the dict as JSON, then the report line
    import json

    figures = seal_throughput()
    print(json.dumps(figures, indent=2))
    print(summary_line(figures))
