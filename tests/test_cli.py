"""The ``exitless`` command, run as ``python -m exitless`` in a subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import exitless

KEY_PREFIX = "exitless-key-v1:"


def run(
    *args, stdin: bytes | None = None, env_extra: dict | None = None, cwd=None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EXITLESS_KEY_FILE"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "exitless", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def key_hex(path: Path) -> str:
    text = path.read_text().strip()
    assert text.startswith(KEY_PREFIX)
    return text[len(KEY_PREFIX) :]


def assert_one_line_error(proc: subprocess.CompletedProcess, command: str, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    err = proc.stderr.decode()
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith(f"exitless {command}: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def plain(tmp_path) -> tuple[Path, bytes]:
    data = os.urandom(10_000)
    path = tmp_path / "plain.bin"
    path.write_bytes(data)
    return path, data


# ----------------------------------------------------------------------------- keygen


def test_keygen_creates_a_0600_key_file(tmp_path):
    path = tmp_path / "k"
    old = os.umask(0)  # the creation mode itself must be 0600, not the umask's doing
    try:
        proc = run("keygen", "-o", path)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hexkey = key_hex(path)
    assert len(bytes.fromhex(hexkey)) == 32
    key = exitless.Key.load(path)
    out = proc.stdout.decode()
    assert key.key_id.hex() in out and str(path) in out
    assert hexkey not in out and hexkey not in proc.stderr.decode()


def test_keygen_refuses_to_overwrite(tmp_path, keyfile):
    before = keyfile.read_bytes()
    proc = run("keygen", "-o", keyfile)
    assert_one_line_error(proc, "keygen", str(keyfile), "exists")
    assert keyfile.read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("not a key")
    assert run("keygen", "--out", other).returncode == 1
    assert other.read_text() == "not a key"


def test_keygen_makes_different_keys(tmp_path):
    for name in ("a", "b"):
        assert run("keygen", "-o", tmp_path / name).returncode == 0
    assert key_hex(tmp_path / "a") != key_hex(tmp_path / "b")


# ----------------------------------------------------------------------------- seal / open


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["-c", "app-7/shuffle-3"],
        ["--algorithm", "chacha20-poly1305"],
        ["--algorithm", "chacha20-poly1305", "--context", "ctx", "--segment-size", "256"],
        ["--segment-size", "4096"],
    ],
)
def test_seal_then_open_round_trip(tmp_path, keyfile, plain, options):
    src, data = plain
    sealed, back = tmp_path / "out.sealed", tmp_path / "back.bin"
    proc = run("seal", src, sealed, "-k", keyfile, *options)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert data not in sealed.read_bytes()
    info = exitless.inspect(sealed)
    algorithm = options[options.index("--algorithm") + 1] if "--algorithm" in options else "aes-256-gcm"
    segment_size = int(options[options.index("--segment-size") + 1]) if "--segment-size" in options else 65536
    assert (info.algorithm, info.segment_size, info.plaintext_size) == (algorithm, segment_size, len(data))
    context = [a for i, a in enumerate(options) if i and options[i - 1] in ("-c", "--context")]
    proc = run("open", sealed, back, "-k", keyfile, *(["-c", context[0]] if context else []))
    assert proc.returncode == 0, proc.stderr
    assert back.read_bytes() == data
    # and the library agrees with the command line
    with exitless.open_spill(sealed, "rb", exitless.Key.load(keyfile), context[0] if context else b"") as r:
        assert r.read() == data


def test_open_to_stdout(tmp_path, keyfile, plain):
    src, data = plain
    sealed = tmp_path / "out.sealed"
    assert run("seal", src, sealed, "-k", keyfile, "-c", "ctx").returncode == 0
    proc = run("open", sealed, "-", "-k", keyfile, "-c", "ctx")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


def test_seal_from_stdin_and_key_from_environment(tmp_path, keyfile):
    data = os.urandom(3000)
    sealed = tmp_path / "s"
    proc = run("seal", "-", sealed, stdin=data, env_extra={"EXITLESS_KEY_FILE": str(keyfile)})
    assert proc.returncode == 0, proc.stderr
    assert exitless.open_bytes(sealed.read_bytes(), exitless.Key.load(keyfile)) == data
    proc = run("open", sealed, "-", env_extra={"EXITLESS_KEY_FILE": str(keyfile)})
    assert proc.returncode == 0 and proc.stdout == data


def test_empty_input_round_trip(tmp_path, keyfile):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    assert run("seal", src, tmp_path / "s", "-k", keyfile).returncode == 0
    assert (tmp_path / "s").stat().st_size == 84
    assert run("open", tmp_path / "s", tmp_path / "back", "-k", keyfile).returncode == 0
    assert (tmp_path / "back").read_bytes() == b""


def test_sealed_output_is_0600(tmp_path, keyfile, plain):
    src, _ = plain
    old = os.umask(0)
    try:
        assert run("seal", src, tmp_path / "s", "-k", keyfile).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600


# ----------------------------------------------------------------------------- failures of open


@pytest.fixture
def sealed(tmp_path, keyfile, plain) -> Path:
    src, _ = plain
    path = tmp_path / "good.sealed"
    proc = run("seal", src, path, "-k", keyfile, "-c", "right", "--segment-size", "256")
    assert proc.returncode == 0, proc.stderr
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".exitless-open-"))


def test_open_with_wrong_key_fails_and_creates_no_output(tmp_path, sealed):
    other_key = tmp_path / "other.key"
    assert run("keygen", "-o", other_key).returncode == 0  # a key from the command itself
    out = tmp_path / "out.bin"
    proc = run("open", sealed, out, "-k", other_key, "-c", "right")
    assert_one_line_error(proc, "open", "IntegrityError", str(sealed))
    assert not out.exists() and leftovers(tmp_path) == []
    assert key_hex(other_key) not in proc.stderr.decode()


def test_open_with_wrong_context_fails_and_creates_no_output(tmp_path, keyfile, sealed):
    out = tmp_path / "out.bin"
    for context in ("wrong", ""):
        proc = run("open", sealed, out, "-k", keyfile, "-c", context)
        assert_one_line_error(proc, "open", "IntegrityError")
        assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["header", "middle", "final", "truncated", "appended"])
def test_open_of_a_tampered_file_fails_and_creates_no_output(tmp_path, keyfile, sealed, where):
    blob = bytearray(sealed.read_bytes())
    if where == "header":
        blob[30] ^= 1
    elif where == "middle":
        blob[10 * 256 + 7] ^= 1  # opening succeeds, the copy fails half way
    elif where == "final":
        blob[-3] ^= 1
    elif where == "truncated":
        del blob[20 * 256 :]
    else:
        blob += b"\x00" * 40
    bad = tmp_path / "bad.sealed"
    bad.write_bytes(blob)
    out = tmp_path / "out.bin"
    proc = run("open", bad, out, "-k", keyfile, "-c", "right")
    err = assert_one_line_error(proc, "open", "IntegrityError", str(bad))
    assert "Traceback" not in err
    assert not out.exists(), "plaintext of a failing stream was left in the output file"
    assert leftovers(tmp_path) == [], "a temporary plaintext file was left behind"
    assert key_hex(keyfile) not in err


def test_open_of_a_tampered_file_to_stdout_exits_1(tmp_path, keyfile, sealed):
    blob = bytearray(sealed.read_bytes())
    blob[-3] ^= 1
    bad = tmp_path / "bad.sealed"
    bad.write_bytes(blob)
    proc = run("open", bad, "-", "-k", keyfile, "-c", "right")
    assert_one_line_error(proc, "open", "IntegrityError")
    assert proc.stdout == b""  # the final segment is checked before anything is written


def test_open_of_a_file_that_is_not_sealed(tmp_path, keyfile, plain):
    src, _ = plain
    out = tmp_path / "out"
    proc = run("open", src, out, "-k", keyfile)
    assert_one_line_error(proc, "open", "FormatError", str(src))
    assert not out.exists()


def test_open_keeps_an_existing_output_file_when_it_fails(tmp_path, keyfile, sealed):
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous contents")
    proc = run("open", sealed, out, "-k", keyfile, "-c", "wrong")
    assert proc.returncode == 1
    assert out.read_bytes() == b"previous contents"


# ----------------------------------------------------------------------------- key file problems


def test_missing_key_file_is_a_clear_error(tmp_path, plain, sealed):
    src, _ = plain
    missing = tmp_path / "no-such.key"
    for args, command in (
        (("seal", src, tmp_path / "s2", "-k", missing), "seal"),
        (("open", sealed, tmp_path / "o2", "-k", missing), "open"),
    ):
        proc = run(*args)
        assert_one_line_error(proc, command, str(missing))
        assert "No such file" in proc.stderr.decode() or "not found" in proc.stderr.decode().lower()
    assert not (tmp_path / "s2").exists() and not (tmp_path / "o2").exists()


def test_no_key_at_all_is_a_clear_error(tmp_path, plain):
    src, _ = plain
    proc = run("seal", src, tmp_path / "s")
    assert_one_line_error(proc, "seal", "no key", "keygen")
    assert not (tmp_path / "s").exists()


def test_group_readable_key_file_is_refused(tmp_path, keyfile, plain):
    src, _ = plain
    os.chmod(keyfile, 0o644)
    proc = run("seal", src, tmp_path / "s", "-k", keyfile)
    err = assert_one_line_error(proc, "seal", "PermissionError", str(keyfile), "chmod 600")
    assert key_hex(keyfile) not in err
    assert not (tmp_path / "s").exists()


def test_malformed_key_file_does_not_echo_its_contents(tmp_path, plain):
    src, _ = plain
    secret = os.urandom(32).hex()
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("exitless-key-v2:" + secret + "\n")
    os.chmod(bad_key, 0o600)
    proc = run("seal", src, tmp_path / "s", "-k", bad_key)
    err = assert_one_line_error(proc, "seal")
    assert secret not in err and secret[:16] not in err


# ----------------------------------------------------------------------------- failures of seal


def test_seal_of_a_missing_input_leaves_no_output(tmp_path, keyfile):
    missing = tmp_path / "nope.bin"
    out = tmp_path / "out.sealed"
    proc = run("seal", missing, out, "-k", keyfile)
    assert_one_line_error(proc, "seal", str(missing))
    assert not out.exists()


def test_seal_with_an_invalid_segment_size_leaves_no_output(tmp_path, keyfile, plain):
    src, _ = plain
    out = tmp_path / "out.sealed"
    proc = run("seal", src, out, "-k", keyfile, "--segment-size", "100")
    assert proc.returncode == 2, "a bad option value is a usage error"
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("exitless seal: error:") and "--segment-size" in last and "256" in last
    assert not out.exists()


def test_failed_seal_keeps_an_existing_output_it_never_opened(tmp_path, keyfile):
    out = tmp_path / "precious"
    out.write_bytes(b"keep me")
    proc = run("seal", tmp_path / "missing-input", out, "-k", keyfile)
    assert proc.returncode == 1
    assert out.read_bytes() == b"keep me"


def test_seal_into_a_missing_directory(tmp_path, keyfile, plain):
    src, _ = plain
    out = tmp_path / "no-dir" / "out.sealed"
    proc = run("seal", src, out, "-k", keyfile)
    assert_one_line_error(proc, "seal", str(out))


# ----------------------------------------------------------------------------- inspect


def test_inspect_prints_header_fields_and_never_the_key(tmp_path, keyfile, plain):
    src, data = plain
    sealed = tmp_path / "s"
    assert (
        run(
            "seal", src, sealed, "-k", keyfile, "--segment-size", "4096", "--algorithm", "chacha20-poly1305"
        ).returncode
        == 0
    )
    proc = run("inspect", sealed)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    key = exitless.Key.load(keyfile)
    fields = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            fields[parts[0]] = parts[1].strip()
    assert fields["format_version"] == "1"
    assert fields["algorithm"] == "chacha20-poly1305"
    assert fields["segment_size"] == "4096"
    assert fields["key_id"] == key.key_id.hex()
    assert fields["file_size"] == str(sealed.stat().st_size)
    assert fields["plaintext_size"] == str(len(data))
    assert fields["segments"] == str(exitless.inspect(sealed).segments) == "3"
    assert str(sealed) in out
    for stream in (proc.stdout.decode(), proc.stderr.decode()):
        assert key_hex(keyfile) not in stream
        assert key_hex(keyfile).upper() not in stream


def test_inspect_json(tmp_path, keyfile, plain):
    src, data = plain
    sealed = tmp_path / "s"
    assert run("seal", src, sealed, "-k", keyfile, "--segment-size", "256").returncode == 0
    proc = run("inspect", sealed, "--json")
    assert proc.returncode == 0, proc.stderr
    fields = json.loads(proc.stdout)
    info = exitless.inspect(sealed)
    assert fields == {
        "path": str(sealed),
        "format_version": 1,
        "algorithm": "aes-256-gcm",
        "segment_size": 256,
        "key_id": exitless.Key.load(keyfile).key_id.hex(),
        "file_size": sealed.stat().st_size,
        "segments": info.segments,
        "plaintext_size": len(data),
    }
    assert key_hex(keyfile) not in proc.stdout.decode()


def test_inspect_without_a_key_id(tmp_path):
    key = exitless.generate_key()
    path = tmp_path / "s"
    with exitless.open_spill(path, "wb", key, key_id=bytes(16)) as w:
        w.write(b"x")
    assert json.loads(run("inspect", path, "--json").stdout)["key_id"] is None
    assert "(none)" in run("inspect", path).stdout.decode()


@pytest.mark.parametrize("content,error", [(b"hello world" * 10, "FormatError"), (b"", "IntegrityError")])
def test_inspect_of_a_bad_file(tmp_path, content, error):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert_one_line_error(run("inspect", path), "inspect", error, str(path))
    assert_one_line_error(run("inspect", path, "--json"), "inspect", error)


def test_inspect_of_a_missing_file(tmp_path):
    assert_one_line_error(run("inspect", tmp_path / "missing"), "inspect", str(tmp_path / "missing"))


# ----------------------------------------------------------------------------- usage


@pytest.mark.parametrize("command", [[], ["keygen"], ["seal"], ["open"], ["inspect"]])
def test_help(command):
    proc = run(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith("usage: exitless")
    assert proc.stderr == b""
    if command:
        assert command[0] in out.splitlines()[0]
    else:
        for sub in ("keygen", "seal", "open", "inspect"):
            assert sub in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "exitless"
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(b"usage: exitless")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["keygen"],
        ["seal"],
        ["seal", "in.bin"],
        ["open", "in.sealed"],
        ["inspect"],
        ["frobnicate"],
        ["bench"],  # the benchmarks are python -m exitless_tools, not in the package
        ["run"],
        ["seal", "a", "b", "--segment-size", "big"],
        ["seal", "a", "b", "--algorithm", "rot13"],
        ["inspect", "f", "--bogus"],
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.decode()
    assert "usage:" in err and "error:" in err
    assert proc.stdout == b""
    assert list(tmp_path.iterdir()) == []  # nothing was created


# ----------------------------------------------------------------------------- kms


def key_id_in(proc: subprocess.CompletedProcess) -> str:
    import re

    assert proc.returncode == 0, proc.stderr
    ids = re.findall(r"\b[0-9a-f]{32}\b", proc.stdout.decode())
    assert len(ids) == 1, proc.stdout
    return ids[0]


def test_kms_init_create_rotate_list_on_a_local_keyring(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    uri = f"local:{ring}"
    init = run("kms", "init", "--kms", uri)
    assert init.returncode == 0, init.stderr
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600
    first = key_id_in(init)
    again = run("kms", "init", "--kms", uri)
    assert_one_line_error(again, "kms init", "already exists")
    created = run("kms", "create-key", env_extra={"EXITLESS_KMS": uri})  # the URI from the environment
    assert created.returncode == 0, created.stderr
    second = key_id_in(created)
    rotated = run("kms", "rotate", "--kms", uri)
    third = key_id_in(rotated)
    listed = run("kms", "list", "--kms", uri, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["key_id"] for r in rows] == [first, second, third]
    assert [r["current"] for r in rows] == [False, False, True]
    # Never key bytes: the keyring's secrets appear in no output.
    doc = json.loads(ring.read_text())
    out = b"".join(p.stdout + p.stderr for p in (init, created, rotated, listed)).decode()
    for k in doc["keys"]:
        assert k["key"] not in out and bytes.fromhex(k["id"]).hex() in out
    plain = run("kms", "list", "--kms", uri).stdout.decode().splitlines()
    assert len(plain) == 3 and plain[-1].endswith("current") and plain[-1].startswith(third)


def test_kms_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("kms", "list"), "kms list", "no KMS")
    assert_one_line_error(run("kms", "list", "--kms", "vault:x"), "kms list", "unknown KMS URI scheme")
    assert_one_line_error(
        run("kms", "list", "--kms", f"local:{tmp_path / 'missing.json'}"), "kms list", "missing.json"
    )
    ring = tmp_path / "ring.json"
    assert run("kms", "init", "--kms", f"local:{ring}").returncode == 0
    ring.chmod(0o644)
    assert_one_line_error(run("kms", "rotate", "--kms", f"local:{ring}"), "kms rotate", str(ring))


def test_kms_commands_on_a_pkcs11_token(tmp_path: Path) -> None:
    """A SoftHSM2 token initialised here: init makes the first primary key, rotate a
    second; list shows both (the keys themselves never leave the token)."""
    import shutil

    if shutil.which("softhsm2-util") is None or not os.path.exists("/usr/lib/softhsm/libsofthsm2.so"):
        pytest.fail("softhsm2 is required (apt-get install -y softhsm2; make test installs it)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {"SOFTHSM2_CONF": str(conf), "EXITLESS_TEST_PIN": "4321"}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "cli",
            "--pin",
            "4321",
            "--so-pin",
            "87654321",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    uri = "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=cli;pin-env=EXITLESS_TEST_PIN"
    init = run("kms", "init", "--kms", uri, env_extra=env)
    assert init.returncode == 0, init.stderr
    first = key_id_in(init)
    assert "already holds" in run("kms", "init", "--kms", uri, env_extra=env).stdout.decode()
    second = key_id_in(run("kms", "rotate", "--kms", uri, env_extra=env))
    rows = json.loads(run("kms", "list", "--kms", uri, "--json", env_extra=env).stdout)
    assert [(r["key_id"], r["current"]) for r in rows] == [(first, False), (second, True)]
    # A PIN in the URI itself is refused.
    bad = run(
        "kms", "list", "--kms", uri.replace("pin-env=EXITLESS_TEST_PIN", "pin-value=4321"), env_extra=env
    )
    assert bad.returncode == 1 and "4321" not in bad.stderr.decode()


def test_seal_and_open_with_a_kms_carry_the_wrapped_key_in_the_header(tmp_path: Path) -> None:
    ring, other = tmp_path / "ring.json", tmp_path / "other.json"
    assert run("kms", "init", "--kms", f"local:{ring}").returncode == 0
    assert run("kms", "init", "--kms", f"local:{other}").returncode == 0
    src = tmp_path / "in.bin"
    src.write_bytes(b"kms-sealed " * 50_000)
    sealed, out = tmp_path / "s.exls", tmp_path / "out.bin"
    proc = run("seal", src, sealed, "--kms", f"local:{ring}", "-c", "ctx")
    assert proc.returncode == 0, proc.stderr
    info = exitless.inspect(sealed)
    assert info.version == 2 and info.envelope and b"kms-sealed" not in sealed.read_bytes()
    proc = run("open", sealed, out, "--kms", f"local:{ring}", "-c", "ctx")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == src.read_bytes()
    # No side file: the keyring alone opens it; another keyring or context does not.
    assert_one_line_error(run("open", sealed, tmp_path / "x", "--kms", f"local:{other}", "-c", "ctx"), "open")
    assert_one_line_error(
        run("open", sealed, tmp_path / "y", "--kms", f"local:{ring}", "-c", "other"), "open", "IntegrityError"
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # A flipped bit in the envelope never yields plaintext.
    raw = bytearray(sealed.read_bytes())
    raw[90] ^= 1
    sealed.write_bytes(bytes(raw))
    assert_one_line_error(run("open", sealed, tmp_path / "z", "--kms", f"local:{ring}", "-c", "ctx"), "open")
    assert not (tmp_path / "z").exists()
    # --key and --kms together are a usage error.
    keyf = tmp_path / "k"
    assert run("keygen", "-o", keyf).returncode == 0
    assert_one_line_error(
        run("seal", src, tmp_path / "w", "--kms", f"local:{ring}", "--key", keyf),
        "seal",
        "either --key or --kms",
    )
