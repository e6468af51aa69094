"""Hostile key, keyring, lock and PIN files (issue 14): symbolic links, another
user's files, FIFOs, binary contents, deep or huge JSON, and the spark hook's stats
file. Every refusal names the path, never a byte of the file, and chains nothing.

Tests that need a file owned by another user chown one to uid 65534 (nobody), which
only root can do; they are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import exitless
from exitless.kms import InsecureKeyringError, KeyringFormatError, KmsConfigError, LocalKms, open_kms

NOBODY = 65534
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: only root can chown a test file to another user (uid 65534)"
)
PKCS11 = "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=exl-hostile"


def run_cli(*args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("EXITLESS_KEY_FILE", "EXITLESS_KMS")}
    return subprocess.run(
        [sys.executable, "-m", "exitless", *map(str, args)], capture_output=True, env=env, timeout=timeout
    )


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a failed command (no traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"exitless {command}: error: "), err
    return err


def private_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def assert_no_byte_of(message: str, data: bytes) -> None:
    """No non-ASCII byte of ``data`` appears in ``message``, in any usual spelling."""
    for b in set(data):
        if b >= 0x80:
            for form in (f"\\x{b:02x}", f"0x{b:02x}", f"\\x{b:02X}", f"0x{b:02X}", chr(b)):
                assert form not in message, (form, message)


def assert_nothing_chained(e: BaseException) -> None:
    assert e.__cause__ is None, repr(e.__cause__)
    assert e.__context__ is None, f"chained {type(e.__context__).__name__} keeps the file's bytes alive"


# ----------------------------------------------------------------------------- row 4: symlinks, owners, FIFOs


def test_key_file_symlink_is_refused(tmp_path: Path, keyfile: Path) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(keyfile)
    with pytest.raises(PermissionError, match="symbolic link") as info:
        exitless.Key.load(link)
    assert str(link) in str(info.value)
    (tmp_path / "in").write_bytes(b"data")
    err = one_line_error(run_cli("seal", tmp_path / "in", tmp_path / "out", "-k", link), "seal")
    assert "symbolic link" in err and str(link) in err
    assert not (tmp_path / "out").exists()


@needs_root
def test_key_file_of_another_user_is_refused(tmp_path: Path, keyfile: Path) -> None:
    os.chown(keyfile, NOBODY, NOBODY)
    with pytest.raises(PermissionError, match=f"owned by uid {NOBODY}") as info:
        exitless.Key.load(keyfile)
    assert str(keyfile) in str(info.value)
    (tmp_path / "in").write_bytes(b"data")
    err = one_line_error(run_cli("seal", tmp_path / "in", tmp_path / "out", "-k", keyfile), "seal")
    assert f"uid {NOBODY}" in err and str(keyfile) in err


def test_key_file_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    (tmp_path / "in").write_bytes(b"data")
    # Before: Key.load stat()ed the FIFO (mode 0600: accepted) and blocked reading it.
    err = one_line_error(run_cli("seal", tmp_path / "in", tmp_path / "out", "-k", fifo, timeout=20), "seal")
    assert "FIFO" in err and str(fifo) in err


def test_keyring_symlink_is_refused(tmp_path: Path, keyring: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(keyring)
    with pytest.raises(InsecureKeyringError, match="symbolic link") as info:
        LocalKms(link)
    assert str(link) in str(info.value)


@needs_root
def test_keyring_of_another_user_is_refused(keyring: Path) -> None:
    os.chown(keyring, NOBODY, NOBODY)
    with pytest.raises(InsecureKeyringError, match=f"owned by uid {NOBODY}") as info:
        LocalKms(keyring)
    assert str(keyring) in str(info.value)
    err = one_line_error(run_cli("kms", "list", "--kms", f"local:{keyring}"), "kms list")
    assert str(keyring) in err


def test_pin_file_symlink_is_refused(tmp_path: Path) -> None:
    pin = private_file(tmp_path / "pin", b"1234\n")
    link = tmp_path / "pin.link"
    link.symlink_to(pin)
    with pytest.raises(InsecureKeyringError, match="symbolic link") as info:
        open_kms(f"{PKCS11};pin-file={link}")
    assert str(link) in str(info.value)


@needs_root
def test_pin_file_of_another_user_is_refused(tmp_path: Path) -> None:
    pin = private_file(tmp_path / "pin", b"1234\n")
    os.chown(pin, NOBODY, NOBODY)
    with pytest.raises(InsecureKeyringError, match=f"owned by uid {NOBODY}") as info:
        open_kms(f"{PKCS11};pin-file={pin}")
    assert str(pin) in str(info.value)


def test_lock_file_symlink_is_refused_and_nothing_is_created(tmp_path: Path, keyring: Path) -> None:
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    lock = Path(f"{keyring}.lock")
    lock.symlink_to(target)
    before = keyring.read_bytes()
    with LocalKms(keyring) as kms, pytest.raises(InsecureKeyringError, match="symbolic link") as info:
        kms.rotate()
    assert str(lock) in str(info.value)
    err = one_line_error(run_cli("kms", "rotate", "--kms", f"local:{keyring}"), "kms rotate")
    assert "symbolic link" in err
    assert not target.exists(), "rotate created a file at the lock symlink's target"
    assert keyring.read_bytes() == before and lock.is_symlink()


@needs_root
def test_lock_file_of_another_user_is_refused(keyring: Path) -> None:
    lock = Path(f"{keyring}.lock")
    lock.touch(mode=0o600)
    os.chown(lock, NOBODY, NOBODY)
    before = keyring.read_bytes()
    with LocalKms(keyring) as kms, pytest.raises(InsecureKeyringError, match=f"owned by uid {NOBODY}"):
        kms.rotate()
    assert keyring.read_bytes() == before


# ----------------------------------------------------------------------------- row 5: no secret bytes in errors


def test_binary_key_file_error_names_no_byte_of_it(tmp_path: Path) -> None:
    data = bytes(b | 0x80 for b in os.urandom(81))  # all non-ASCII: any decode error names one
    bad = private_file(tmp_path / "binary.key", data)
    with pytest.raises(ValueError) as info:
        exitless.Key.load(bad)
    message = str(info.value)
    assert str(bad) in message and "not ASCII text" in message
    assert_no_byte_of(message, data)
    assert_nothing_chained(info.value)
    (tmp_path / "in").write_bytes(b"data")
    err = one_line_error(run_cli("seal", tmp_path / "in", tmp_path / "out", "-k", bad), "seal")
    assert_no_byte_of(err, data)
    assert "UnicodeDecodeError" not in err


def test_key_file_with_bad_hex_names_no_byte_of_it(tmp_path: Path) -> None:
    secret = os.urandom(31).hex() + "zz"
    bad = private_file(tmp_path / "hex.key", f"exitless-key-v1:{secret}\n".encode())
    with pytest.raises(ValueError, match="not valid hex") as info:
        exitless.Key.load(bad)
    assert secret[:8] not in str(info.value)
    assert_nothing_chained(info.value)


def test_pin_file_with_invalid_utf8_names_no_byte_of_it(tmp_path: Path) -> None:
    data = b"12" + bytes(b | 0x80 for b in os.urandom(6)) + b"\xff\n"
    pin = private_file(tmp_path / "pin", data)
    with pytest.raises(KmsConfigError) as info:
        open_kms(f"{PKCS11};pin-file={pin}")
    message = str(info.value)
    assert str(pin) in message and "UTF-8" in message
    assert_no_byte_of(message, data)
    assert_nothing_chained(info.value)


def test_keyring_that_is_not_utf8_or_json_chains_nothing(tmp_path: Path) -> None:
    for name, data in (
        ("binary.json", os.urandom(64) + b"\xff"),
        ("broken.json", b'{"keys": [{"key": "c2VjcmV0"'),
    ):
        ring = private_file(tmp_path / name, data)
        with pytest.raises(KeyringFormatError, match="not valid JSON") as info:
            LocalKms(ring)
        assert_no_byte_of(str(info.value), data)
        assert "c2VjcmV0" not in str(info.value)
        assert_nothing_chained(info.value)


# ----------------------------------------------------------------------------- row 7: deep and huge keyrings


def test_deeply_nested_keyring_is_a_clean_error(tmp_path: Path) -> None:
    ring = private_file(tmp_path / "deep.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(KeyringFormatError, match="nested too deeply") as info:
        LocalKms(ring)
    assert str(ring) in str(info.value)
    err = one_line_error(run_cli("kms", "list", "--kms", f"local:{ring}"), "kms list")
    assert "KeyringFormatError" in err and "RecursionError" not in err


def test_deep_values_in_a_keyring_are_described_not_printed(tmp_path: Path) -> None:
    doc = '{"format": "exitless-kms-keyring", "version": ' + "[" * 500 + "]" * 500 + ', "keys": []}'
    ring = private_file(tmp_path / "v.json", doc.encode())
    with pytest.raises(KeyringFormatError, match="unsupported version a JSON array") as info:
        LocalKms(ring)
    assert len(str(info.value)) < 300


def test_oversized_keyring_is_refused_before_it_is_read(tmp_path: Path) -> None:
    ring = tmp_path / "huge.json"
    with open(ring, "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of zeros
    os.chmod(ring, 0o600)
    with pytest.raises(KeyringFormatError, match="more than the 16777216") as info:
        LocalKms(ring)
    assert str(ring) in str(info.value)


def test_oversized_key_and_pin_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    os.chmod(big, 0o600)
    with pytest.raises(ValueError, match="more than the 4096"):
        exitless.Key.load(big)
    with pytest.raises(KmsConfigError, match="more than the 4096"):
        open_kms(f"{PKCS11};pin-file={big}")


def test_well_formed_files_still_load(tmp_path: Path, keyfile: Path, keyring: Path) -> None:
    key = exitless.Key.load(keyfile)
    assert len(key.key_id) == 16
    with LocalKms(keyring) as kms:
        first = kms.current_key_id
        assert kms.rotate() != first
        assert len(kms.list_keys()) == 2
    assert Path(f"{keyring}.lock").is_file()
    assert json.loads(keyring.read_text())["current"] != first.hex()


# ----------------------------------------------------------------------------- row 6: the spark hook's stats file


@pytest.fixture
def hook():
    from exitless.spark import hook

    saved = hook.state._config, hook.state._state
    yield hook
    hook.state._config, hook.state._state = saved


def publish(hook, stats_dir: Path):
    """Writes this process's counters record through the hook's own function."""
    hook.state._config = hook.state._Config(backend="sync", stats_dir=str(stats_dir), pyspark_version="test")
    state = hook.state._ProcessState("sync")
    state.stats.files_written = 7
    try:
        hook.counters._publish(state)
        state.stats.files_written = 8
        hook.counters._publish(state)  # the in-place update of an existing record
    finally:
        if state.stats_fd is not None:
            os.close(state.stats_fd)
        state.key.wipe()
    return state


def test_stats_file_symlink_is_replaced_not_followed(tmp_path: Path, hook) -> None:
    stats_dir = tmp_path / "stats"
    stats_dir.mkdir()
    target = tmp_path / "victim"
    target.write_text("precious\n")
    planted = stats_dir / f"exitless-spark-{os.getpid()}.json"
    planted.symlink_to(target)
    dangling = tmp_path / "created-through-link"
    publish(hook, stats_dir)
    assert target.read_text() == "precious\n", "the counters were written through a planted symlink"
    assert not planted.is_symlink() and planted.is_file()
    record = json.loads(planted.read_bytes())
    assert record["files_written"] == 8 and record["pid"] == os.getpid()
    assert sorted(p.name for p in stats_dir.iterdir()) == [planted.name]  # no temporary file left
    # A dangling symlink: before, the file was created at its target.
    planted.unlink()
    planted.symlink_to(dangling)
    publish(hook, stats_dir)
    assert not dangling.exists() and planted.is_file()


@pytest.mark.parametrize("problem", ["symlink", "world-writable", "other-owner"])
def test_stats_dir_is_checked(tmp_path: Path, hook, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    real.mkdir()
    stats_dir = tmp_path / "stats"
    if problem == "symlink":  # e.g. planted by whoever could write the parent directory
        stats_dir.symlink_to(real, target_is_directory=True)
    elif problem == "world-writable":  # anyone could plant or swap files in it
        stats_dir = real
        os.chmod(stats_dir, 0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root: only root can chown a test directory to another user (uid 65534)")
        stats_dir = real
        os.chown(stats_dir, NOBODY, NOBODY)
    publish(hook, stats_dir)
    assert list(real.iterdir()) == [], "counters written into a refused stats directory"
    assert f"cannot write counters to {stats_dir}" in capsys.readouterr().err
    with pytest.raises(hook.HookError, match="EXITLESS_SPARK_STATS_DIR"):
        hook.counters._check_stats_dir(str(stats_dir))


def test_sticky_world_writable_stats_dir_is_accepted(tmp_path: Path, hook) -> None:
    stats_dir = tmp_path / "stats"
    stats_dir.mkdir()
    os.chmod(stats_dir, 0o1777)  # as /tmp
    publish(hook, stats_dir)
    assert json.loads((stats_dir / f"exitless-spark-{os.getpid()}.json").read_bytes())["files_written"] == 8


def test_reading_stats_skips_symlinks_and_quotes_no_foreign_bytes(tmp_path: Path, hook) -> None:
    (tmp_path / "exitless-spark-1.json").write_text(json.dumps({"files_sealed": 3}))
    secret = tmp_path / "secret"
    secret.write_text('{"files_sealed": 99}')
    (tmp_path / "exitless-spark-2.json").symlink_to(secret)
    assert [r["files_sealed"] for r in hook.iter_stats_files(tmp_path)] == [3]
    (tmp_path / "exitless-spark-3.json").write_bytes(b"TOP SECRET not json")
    with pytest.raises(ValueError) as e:
        list(hook.iter_stats_files(tmp_path))
    assert "SECRET" not in str(e.value) and "exitless-spark-3.json" in str(e.value)
