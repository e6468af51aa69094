"""Hostile use of the ``exitless`` command (issue 14), run as ``python -m exitless``
in subprocesses: one file named twice, devices, FIFOs and symbolic links as OUT or
IN, signals during a write, closed standard streams. Nothing may be destroyed,
followed, left behind half-written or hang, and every failure is one line.

Device nodes are made with mknod in the test directory (never the real /dev/null),
which needs root; those cases are skipped otherwise.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import exitless

CAUGHT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "exitless", *map(str, args)]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("EXITLESS_KEY_FILE", "EXITLESS_KMS")}


def default_signals() -> None:
    """In the child: the three signals at their defaults, whatever pytest runs under."""
    for signum in CAUGHT:
        signal.signal(signum, signal.SIG_DFL)


def run(
    *args: object, stdin=None, timeout: float = 60, preexec: Callable[[], None] | None = None, **kw
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args), stdin=stdin, capture_output=True, env=env(), timeout=timeout, preexec_fn=preexec, **kw
    )


def error_line(proc: subprocess.CompletedProcess, cmd: str, status: int | tuple[int, ...]) -> str:
    """The one stderr line of a failed command: no traceback, the expected status."""
    err = proc.stderr.decode()
    statuses = status if isinstance(status, tuple) else (status,)
    assert proc.returncode in statuses, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"exitless {cmd}: "), err
    return err


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".exitless-open-"))


def mknod_char(path: Path, major: int, minor: int) -> Path:
    """A character device node (a private copy of /dev/null or /dev/full)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mknod of a test copy of /dev/null and /dev/full")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    return path


@pytest.fixture
def plain(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(100_000)
    path = tmp_path / "plain.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def sealed(tmp_path: Path, keyfile: Path, plain: tuple[Path, bytes]) -> Path:
    path = tmp_path / "file.sealed"
    with exitless.open_spill(path, "wb", exitless.Key.load(keyfile)) as w:
        w.write(plain[1])
    return path


# ----------------------------------------------------------------------------- row 1: one file named twice


@pytest.mark.parametrize("alias", ["same", "hardlink", "symlink-in"])
def test_seal_refuses_in_and_out_being_one_file(tmp_path: Path, keyfile: Path, plain, alias: str) -> None:
    src, data = plain
    if alias == "same":
        args = (src, src)
    elif alias == "hardlink":
        os.link(src, tmp_path / "hard")
        args = (src, tmp_path / "hard")
    else:
        (tmp_path / "link").symlink_to(src)
        args = (tmp_path / "link", src)
    proc = run("seal", *args, "-k", keyfile)
    err = error_line(proc, "seal", 2)
    assert "same file" in err
    assert src.read_bytes() == data, "the input was overwritten"


def test_seal_refuses_the_key_file_as_out(tmp_path: Path, keyfile: Path, plain) -> None:
    src, _ = plain
    key = keyfile.read_bytes()
    err = error_line(run("seal", src, keyfile, "-k", keyfile), "seal", 2)
    assert "the key file" in err and "same file" in err
    assert keyfile.read_bytes() == key, "the key file was overwritten by its own ciphertext"


def test_seal_refuses_stdin_being_out(tmp_path: Path, keyfile: Path, plain) -> None:
    src, data = plain
    with open(src, "rb") as stdin:
        err = error_line(run("seal", "-", src, "-k", keyfile, stdin=stdin), "seal", 2)
    assert "stdin" in err and "same file" in err
    assert src.read_bytes() == data


def test_seal_refuses_the_keyring_as_out(tmp_path: Path, plain) -> None:
    from exitless.kms import LocalKms

    src, _ = plain
    ring = tmp_path / "ring.json"
    LocalKms.init(ring).close()
    before = ring.read_bytes()
    err = error_line(run("seal", src, ring, "--kms", f"local:{ring}"), "seal", 2)
    assert "the keyring" in err
    assert ring.read_bytes() == before


@pytest.mark.parametrize("which", ["in-out", "hardlink", "key-out"])
def test_open_refuses_one_file_named_twice(tmp_path: Path, keyfile: Path, sealed: Path, which: str) -> None:
    before = {p: p.read_bytes() for p in (sealed, keyfile)}
    if which == "in-out":
        args = (sealed, sealed, "-k", keyfile)
    elif which == "hardlink":
        os.link(sealed, tmp_path / "hard")
        args = (sealed, tmp_path / "hard", "-k", keyfile)
    else:
        args = (sealed, keyfile, "-k", keyfile)
    err = error_line(run("open", *args), "open", 2)
    assert "same file" in err
    assert {p: p.read_bytes() for p in before} == before
    assert leftovers(tmp_path) == []


def test_open_refuses_stdout_appending_to_in(tmp_path: Path, keyfile: Path, sealed: Path) -> None:
    before = sealed.read_bytes()
    with open(sealed, "ab") as stdout:
        proc = subprocess.run(
            command("open", sealed, "-", "-k", keyfile),
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env(),
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert b"same file" in proc.stderr
    assert sealed.read_bytes() == before


# ----------------------------------------------------------------------------- row 2: what OUT may be


def out_node(tmp_path: Path, kind: str) -> tuple[Path, Callable[[], object]]:
    """An OUT of the given kind, and a function giving what must not change about it."""
    if kind == "null":
        node = mknod_char(tmp_path / "null", 1, 3)
    elif kind == "full":
        node = mknod_char(tmp_path / "full", 1, 7)
    elif kind == "fifo":
        node = tmp_path / "fifo"
        os.mkfifo(node)
    else:
        target = tmp_path / "target"
        target.write_bytes(b"target contents")
        node = tmp_path / "link"
        node.symlink_to(target)
        return node, lambda: (os.readlink(node), target.read_bytes(), stat.S_IFMT(os.lstat(node).st_mode))
    return node, lambda: (os.lstat(node).st_mode, os.lstat(node).st_rdev, os.lstat(node).st_ino)


@pytest.mark.parametrize("kind", ["null", "full", "fifo", "symlink"])
def test_open_refuses_an_out_that_is_not_a_regular_file(
    tmp_path: Path, keyfile: Path, sealed: Path, kind: str
) -> None:
    node, facts = out_node(tmp_path, kind)
    before = facts()
    err = error_line(run("open", sealed, node, "-k", keyfile, timeout=30), "open", 2)
    assert str(node) in err
    assert ("symbolic link" in err) if kind == "symlink" else ("'-'" in err and "redirect" in err)
    assert facts() == before, "OUT was replaced or written through"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["null", "full", "fifo", "symlink"])
def test_seal_refuses_an_out_that_is_not_a_regular_file(
    tmp_path: Path, keyfile: Path, plain, kind: str
) -> None:
    node, facts = out_node(tmp_path, kind)
    before = facts()
    err = error_line(run("seal", plain[0], node, "-k", keyfile, timeout=30), "seal", 2)
    assert str(node) in err
    assert facts() == before, "OUT was replaced or written through"


def test_seal_refuses_dash_as_out(tmp_path: Path, keyfile: Path, plain) -> None:
    err = error_line(run("seal", plain[0], "-", "-k", keyfile, cwd=tmp_path), "seal", 2)
    assert "'-'" in err
    assert not (tmp_path / "-").exists(), "a file named '-' was created"


def test_open_to_stdout_redirected_to_a_device_still_works(
    tmp_path: Path, keyfile: Path, sealed: Path, plain
) -> None:
    node = mknod_char(tmp_path / "null", 1, 3)
    with open(node, "wb") as devnull:
        proc = subprocess.run(
            command("open", sealed, "-", "-k", keyfile),
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=env(),
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    out = run("open", sealed, "-", "-k", keyfile)
    assert out.returncode == 0 and out.stdout == plain[1]


def test_open_and_seal_still_replace_a_regular_out(
    tmp_path: Path, keyfile: Path, sealed: Path, plain
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    assert run("open", sealed, out, "-k", keyfile).returncode == 0
    assert out.read_bytes() == plain[1]
    resealed = tmp_path / "resealed"
    resealed.write_bytes(b"old")
    assert run("seal", out, resealed, "-k", keyfile).returncode == 0
    assert run("open", resealed, "-", "-k", keyfile).stdout == plain[1]


# ----------------------------------------------------------------------------- row 3: signals during a write


@pytest.fixture(scope="module")
def big_sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 200 MiB sealed file: long enough to stop `open` in the middle of it."""
    d = tmp_path_factory.mktemp("big")
    key = exitless.generate_key()
    key.save(d / "k")
    chunk = os.urandom(1 << 20)
    with exitless.open_spill(d / "big.sealed", "wb", key) as w:
        for _ in range(200):
            w.write(chunk)
    return d / "big.sealed", d / "k"


@pytest.mark.parametrize("signum", CAUGHT, ids=lambda s: signal.Signals(s).name)
def test_signal_during_open_removes_the_temporary_file(tmp_path: Path, big_sealed, signum: int) -> None:
    src, key = big_sealed
    out = tmp_path / "plain.out"
    for _attempt in range(3):
        proc = subprocess.Popen(
            command("open", src, out, "-k", key),
            stderr=subprocess.PIPE,
            env=env(),
            preexec_fn=default_signals,
        )
        deadline = time.monotonic() + 30
        while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGSTOP)  # hold it mid-write, then deliver the signal
        caught = bool(leftovers(tmp_path)) and not out.exists()
        proc.send_signal(signum)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        if caught:
            break
        out.unlink(missing_ok=True)  # it finished before it could be stopped: again
    else:
        pytest.fail("could not stop `exitless open` while its temporary file existed")
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert leftovers(tmp_path) == [], "a temporary file with a plaintext prefix was left"
    assert not out.exists()
    text = err.decode()
    assert (
        text.count("\n") == 1 and signal.Signals(signum).name in text and "removed the partial output" in text
    )


@pytest.mark.parametrize("signum", CAUGHT, ids=lambda s: signal.Signals(s).name)
def test_signal_during_seal_removes_the_partial_output(tmp_path: Path, keyfile: Path, signum: int) -> None:
    out = tmp_path / "out.sealed"
    proc = subprocess.Popen(
        command("seal", "-", out, "-k", keyfile),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        preexec_fn=default_signals,
    )
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(1 << 20))
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.exists(), "seal never created OUT"
    time.sleep(0.2)  # blocked reading stdin, with a partial OUT
    proc.send_signal(signum)
    try:
        proc.wait(timeout=30)
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert not out.exists(), "an incomplete sealed OUT was left"
    assert err.count("\n") == 1 and str(out) in err


def test_an_ignored_sighup_stays_ignored(tmp_path: Path, keyfile: Path) -> None:
    """Under nohup (SIGHUP ignored at start) a hangup does not stop the command."""

    def nohup() -> None:
        default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    out = tmp_path / "out.sealed"
    data = os.urandom(300_000)
    proc = subprocess.Popen(
        command("seal", "-", out, "-k", keyfile),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        preexec_fn=nohup,
    )
    assert proc.stdin is not None
    proc.stdin.write(data[:1000])
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    proc.stdin.write(data[1000:])
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else b""
    assert run("open", out, "-", "-k", keyfile).stdout == data


@pytest.mark.parametrize("cmd, needle", [("open", ".exitless-open-"), ("seal", "incomplete sealed OUT")])
def test_help_says_what_sigkill_leaves(cmd: str, needle: str) -> None:
    proc = run(cmd, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.decode().split())
    assert "SIGKILL cannot be caught" in text and needle in text
    assert "SIGTERM" in text and "128+N" in text


# ----------------------------------------------------------------------------- row 7: FIFOs, closed streams


@pytest.mark.slow
def test_seal_of_a_fifo_without_a_writer_fails_instead_of_hanging(tmp_path: Path, keyfile: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.sealed"
    started = time.monotonic()
    proc = run("seal", fifo, out, "-k", keyfile, timeout=45)  # the default wait is 10 s
    err = error_line(proc, "seal", 1)
    assert "no writer" in err and str(fifo) in err and "--fifo-wait" in err
    assert time.monotonic() - started < 40
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["opens-late", "silent-at-first"])
def test_seal_of_a_fifo_with_a_writer_works(tmp_path: Path, keyfile: Path, writer: str) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.sealed"
    data = os.urandom(200_000)

    def write() -> None:
        if writer == "opens-late":
            time.sleep(1.0)  # exitless opened the FIFO before any writer did
            with open(fifo, "wb") as f:
                f.write(data)
        else:
            with open(fifo, "wb") as f:  # a writer holds it open, writing after --fifo-wait
                time.sleep(1.5)
                f.write(data)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        proc = run(
            "seal",
            fifo,
            out,
            "-k",
            keyfile,
            "--fifo-wait",
            "5" if writer == "opens-late" else "0.3",
            timeout=60,
        )
    finally:
        t.join(timeout=10)
        if t.is_alive():  # the command never read: let the writer's open() return, and fail its write
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            t.join(timeout=10)
    assert proc.returncode == 0, proc.stderr
    opened = run("open", out, "-", "-k", keyfile)
    assert opened.returncode == 0, opened.stderr
    assert len(opened.stdout) == len(data)
    assert opened.stdout == data


def test_seal_of_a_device_is_refused(tmp_path: Path, keyfile: Path) -> None:
    node = mknod_char(tmp_path / "null", 1, 3)
    out = tmp_path / "out.sealed"
    err = error_line(run("seal", node, out, "-k", keyfile, timeout=30), "seal", 2)
    assert "character device" in err and "'-'" in err
    assert not out.exists()


@pytest.mark.parametrize("cmd", ["open", "inspect"])
def test_a_fifo_as_sealed_input_fails_instead_of_hanging(tmp_path: Path, keyfile: Path, cmd: str) -> None:
    fifo = tmp_path / "sealed.fifo"
    os.mkfifo(fifo)
    args = (fifo, tmp_path / "out", "-k", keyfile) if cmd == "open" else (fifo,)
    err = error_line(run(cmd, *args, timeout=20), cmd, 2)
    assert "FIFO" in err and str(fifo) in err
    assert not (tmp_path / "out").exists()


def test_seal_from_a_closed_stdin_is_one_line(tmp_path: Path, keyfile: Path) -> None:
    out = tmp_path / "out.sealed"
    proc = run("seal", "-", out, "-k", keyfile, preexec=lambda: os.close(0))
    err = error_line(proc, "seal", (1, 2))
    assert "stdin is closed" in err
    assert not out.exists()


def test_open_to_a_closed_stdout_is_one_line(tmp_path: Path, keyfile: Path, sealed: Path) -> None:
    proc = subprocess.run(
        command("open", sealed, "-", "-k", keyfile),
        stderr=subprocess.PIPE,
        env=env(),
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    err = error_line(proc, "open", (1, 2))
    assert "stdout is closed" in err


def test_deeply_nested_keyring_is_one_line(tmp_path: Path, plain) -> None:
    ring = tmp_path / "deep.json"
    ring.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    os.chmod(ring, 0o600)
    for args, cmd in (
        (("kms", "list", "--kms", f"local:{ring}"), "kms list"),
        (("seal", plain[0], tmp_path / "out", "--kms", f"local:{ring}"), "seal"),
    ):
        err = error_line(run(*args), cmd, 1)
        assert "nested too deeply" in err
    assert not (tmp_path / "out").exists()
