#!/usr/bin/env python3
"""cargo-git-ident.py URL: the directory name cargo 1.66 gives a git source under
$CARGO_HOME/git/{db,checkouts}: the URL's last path segment, a dash, and the
little-endian hex of SipHash-2-4 (zero key) over the canonical URL as Rust's `str`
hashes it (its bytes, then 0xff). Canonical: github.com lowercased, no trailing
slash, no ".git". (cargo's util::hex::short_hash and sources::git::source::ident as
of 1.66; newer cargo hashes differently, and Occlum pins 1.66.)
"""

import struct
import sys
from urllib.parse import urlsplit


def rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & 0xFFFFFFFFFFFFFFFF


def siphash24(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-2-4 of `data` under the key (k0, k1) (two little-endian u64 halves)."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    M = 0xFFFFFFFFFFFFFFFF

    def rnd() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & M
        v1 = rotl(v1, 13)
        v1 ^= v0
        v0 = rotl(v0, 32)
        v2 = (v2 + v3) & M
        v3 = rotl(v3, 16)
        v3 ^= v2
        v0 = (v0 + v3) & M
        v3 = rotl(v3, 21)
        v3 ^= v0
        v2 = (v2 + v1) & M
        v1 = rotl(v1, 17)
        v1 ^= v2
        v2 = rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        (m,) = struct.unpack_from("<Q", data, i)
        assert isinstance(m, int)
        v3 ^= m
        rnd()
        rnd()
        v0 ^= m
    b = (n & 0xFF) << 56
    for i, c in enumerate(data[end:]):
        b |= c << (8 * i)
    v3 ^= b
    rnd()
    rnd()
    v0 ^= b
    v2 ^= 0xFF
    rnd()
    rnd()
    rnd()
    rnd()
    return v0 ^ v1 ^ v2 ^ v3


def canonical(url: str) -> str:
    url = url.rstrip("/")
    if urlsplit(url).hostname == "github.com":
        url = url.lower()
    return url[: -len(".git")] if url.endswith(".git") else url


def ident(url: str) -> str:
    url = canonical(url)
    digest = siphash24(url.encode() + b"\xff")
    return url.rsplit("/", 1)[-1] + "-" + struct.pack("<Q", digest).hex()


if __name__ == "__main__":
    print(ident(sys.argv[1]))
