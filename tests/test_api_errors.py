"""Bad inputs give typed errors with useful messages, and no error, repr or message
ever carries key bytes."""

from __future__ import annotations

import base64
import copy
import errno
import io
import os
import pickle
import re
import stat
from pathlib import Path

import pytest

import exitless
from exitless import ExitlessError, FormatError, IntegrityError

H = 68


@pytest.fixture
def sealed_file(tmp_path, key) -> Path:
    path = tmp_path / "good.sealed"
    with exitless.open_spill(path, "wb", key, b"ctx", segment_size=256) as w:
        w.write(os.urandom(1000))
    return path


def writer_factories(tmp_path):
    """Every entry point that takes writer options, as (name, callable(**overrides))."""
    return {
        "open_spill wb": lambda key, **kw: exitless.open_spill(tmp_path / "out-wb", "wb", key, **kw),
        "open_spill w+b": lambda key, **kw: exitless.open_spill(tmp_path / "out-wpb", "w+b", key, **kw),
        "seal_bytes": lambda key, **kw: exitless.seal_bytes(b"data", key, **kw),
    }


def entry_points_failing_with(tmp_path, key, exc_type, pattern, **options) -> dict[str, str]:
    """Calls every writer entry point with ``options``; returns those that did not raise
    ``exc_type`` with a message matching ``pattern`` (name -> what happened)."""
    wrong = {}
    for name, call in writer_factories(tmp_path).items():
        try:
            call(key, **options)
        except Exception as e:
            if not (isinstance(e, exc_type) and re.search(pattern, str(e))):
                wrong[name] = f"{type(e).__name__}: {e}"
        else:
            wrong[name] = "no error"
    return wrong


# ----------------------------------------------------------------------------- exception hierarchy


def test_exception_hierarchy():
    assert issubclass(IntegrityError, ExitlessError) and issubclass(FormatError, ExitlessError)
    assert issubclass(ExitlessError, Exception)
    assert not issubclass(IntegrityError, FormatError) and not issubclass(FormatError, IntegrityError)
    assert not issubclass(ExitlessError, (OSError, ValueError))


# ----------------------------------------------------------------------------- keys as arguments


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 64])
def test_wrong_key_length_is_a_value_error(tmp_path, sealed_file, length):
    raw = os.urandom(length)
    calls = dict(writer_factories(tmp_path))
    calls["open_spill rb"] = lambda k: exitless.open_spill(sealed_file, "rb", k, b"ctx")
    calls["open_bytes"] = lambda k: exitless.open_bytes(sealed_file.read_bytes(), k, b"ctx")
    calls["Key"] = exitless.Key
    for call in calls.values():
        for form in (raw, bytearray(raw), memoryview(raw)):
            with pytest.raises(ValueError, match=rf"32 bytes, got {length}\b"):
                call(form)
    assert not (tmp_path / "out-wb").exists() and not (tmp_path / "out-wpb").exists()


@pytest.mark.parametrize("bad", ["00" * 32, "k" * 32, 32, 3.5, None, [0] * 32, object()])
def test_non_bytes_key_is_a_type_error(tmp_path, sealed_file, bad):
    calls = dict(writer_factories(tmp_path))
    calls["open_spill rb"] = lambda k: exitless.open_spill(sealed_file, "rb", k)
    calls["open_bytes"] = lambda k: exitless.open_bytes(b"", k)
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"key must be an exitless\.Key or 32 bytes") as info:
            call(bad)
        assert type(bad).__name__ in str(info.value), name
    assert not (tmp_path / "out-wb").exists()


@pytest.mark.parametrize("bad", [32])
def test_key_constructor_rejects_integers(bad):
    """bytes(32) is 32 zero bytes: Key(32) must not quietly become the all-zero key."""
    with pytest.raises(TypeError):
        exitless.Key(bad)


def test_key_constructor_rejects_str():
    with pytest.raises(TypeError):
        exitless.Key("0" * 32)


# ----------------------------------------------------------------------------- modes, options, contexts


@pytest.mark.parametrize(
    "mode", ["r", "w", "a", "ab", "xb", "rt", "wt", "", "rb+", "r+b", "wbb", "rwb", "b", "w+", "rb\0"]
)
def test_bad_mode_is_a_value_error_naming_the_mode(tmp_path, key, mode):
    path = tmp_path / "f"
    with pytest.raises(ValueError, match="mode") as info:
        exitless.open_spill(path, mode, key)
    assert repr(mode) in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("mode", [b"wb", None, 1, ["wb"]])
def test_non_str_mode_is_a_type_error(tmp_path, key, mode):
    with pytest.raises(TypeError, match="mode"):
        exitless.open_spill(tmp_path / "f", mode, key)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("size", [0, 1, 255, (1 << 30) + 1, 1 << 31, -1, -256])
def test_segment_size_out_of_range_is_a_value_error(tmp_path, key, size):
    wrong = entry_points_failing_with(tmp_path, key, ValueError, r"segment[ _]size", segment_size=size)
    assert wrong == {}
    with pytest.raises((ValueError, OverflowError)):
        exitless.sealed_length(10, size)
    assert not (tmp_path / "out-wb").exists() and not (tmp_path / "out-wpb").exists()


@pytest.mark.parametrize("size", [4096.0, "4096", None, True, b"\x10\x00"])
def test_segment_size_not_an_int_is_a_type_error(tmp_path, key, size):
    wrong = entry_points_failing_with(tmp_path, key, TypeError, r"segment[ _]size", segment_size=size)
    assert wrong == {}
    assert not (tmp_path / "out-wb").exists()


def test_segment_size_bounds_are_inclusive(key):
    for size in (256, 1 << 30):
        sealed = exitless.seal_bytes(b"", key, segment_size=size)
        assert int.from_bytes(sealed[8:12], "big") == size
        assert exitless.open_bytes(sealed, key) == b""


@pytest.mark.parametrize(
    "algorithm", ["aes-128-gcm", "AES-256-GCM", "aes256gcm", "chacha20", "", "xchacha20-poly1305", None]
)
def test_unknown_algorithm_is_a_value_error_listing_the_choices(tmp_path, key, algorithm):
    for name, call in writer_factories(tmp_path).items():
        with pytest.raises(ValueError, match="algorithm") as info:
            call(key, algorithm=algorithm)
        assert "aes-256-gcm" in str(info.value) and "chacha20-poly1305" in str(info.value), name
    assert not (tmp_path / "out-wb").exists()


@pytest.mark.parametrize("key_id", [b"", b"x" * 15, b"x" * 17, bytes(32)])
def test_key_id_of_wrong_length_is_a_value_error(tmp_path, key, key_id):
    for call in writer_factories(tmp_path).values():
        with pytest.raises(ValueError, match="key_id must be 16 bytes"):
            call(key, key_id=key_id)


@pytest.mark.parametrize("context", [5, 1.5, None, ["ctx"], object()])
def test_non_bytes_context_is_a_type_error(tmp_path, key, sealed_file, context):
    calls = {
        **{
            name: (lambda c, call=call: call(key, context=c))
            for name, call in writer_factories(tmp_path).items()
        },
        "open_spill rb": lambda c: exitless.open_spill(sealed_file, "rb", key, c),
        "open_bytes": lambda c: exitless.open_bytes(sealed_file.read_bytes(), key, c),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="context must be bytes or str") as info:
            call(context)
        assert type(context).__name__ in str(info.value), name
    assert not (tmp_path / "out-wb").exists()


@pytest.mark.parametrize("path", [3, None, 1.0, ["x"]])
def test_bad_path_type_is_a_type_error(key, path):
    for mode in ("wb", "rb", "w+b"):
        with pytest.raises(TypeError):
            exitless.open_spill(path, mode, key)
    with pytest.raises(TypeError):
        exitless.inspect(path)


def test_pathlike_and_str_paths_work(tmp_path, key):
    path = tmp_path / "p"
    with exitless.open_spill(str(path), "wb", key) as w:
        w.write(b"1")
    with exitless.open_spill(path, "rb", key) as r:
        assert r.name == str(path) and r.read() == b"1"


def test_seek_with_bad_whence_is_a_value_error(sealed_file, key):
    with exitless.open_spill(sealed_file, "rb", key, b"ctx") as r:
        with pytest.raises(ValueError, match="whence"):
            r.seek(0, 3)
        with pytest.raises(ValueError, match="whence"):
            r.seek(0, -1)


def test_non_buffer_data_is_a_type_error(tmp_path, key):
    with exitless.open_spill(tmp_path / "w", "wb", key) as w:
        with pytest.raises(TypeError):
            w.write("text is not bytes")
        with pytest.raises(TypeError):
            w.write(None)
        w.write(b"ok")
    assert exitless.open_bytes((tmp_path / "w").read_bytes(), key) == b"ok"
    with pytest.raises(TypeError):
        exitless.seal_bytes("text", key)
    with pytest.raises(TypeError):
        exitless.open_bytes("text", key)


def test_readinto_a_read_only_buffer_is_rejected(sealed_file, key):
    with exitless.open_spill(sealed_file, "rb", key, b"ctx") as r:
        with pytest.raises((TypeError, ValueError, BufferError)):
            r.readinto(bytes(10))
        assert r.tell() == 0


# ----------------------------------------------------------------------------- files that are not there or not sealed


def test_reading_a_missing_file_is_enoent_with_the_path(tmp_path, key):
    path = tmp_path / "does-not-exist.sealed"
    with pytest.raises(FileNotFoundError) as info:
        exitless.open_spill(path, "rb", key)
    e = info.value
    assert isinstance(e, OSError) and e.errno == errno.ENOENT
    assert str(path) in str(e)
    assert e.filename == str(path)
    with pytest.raises(FileNotFoundError) as info:
        exitless.inspect(path)
    assert info.value.errno == errno.ENOENT and str(path) in str(info.value)
    assert not path.exists()


def test_writing_into_a_missing_directory_is_enoent_with_the_path(tmp_path, key):
    path = tmp_path / "no-such-dir" / "f.sealed"
    for mode in ("wb", "w+b"):
        with pytest.raises(FileNotFoundError) as info:
            exitless.open_spill(path, mode, key)
        assert info.value.errno == errno.ENOENT and str(path) in str(info.value)


def test_opening_a_directory_is_an_os_error(tmp_path, key):
    for mode in ("rb", "wb", "w+b"):
        with pytest.raises(OSError) as info:
            exitless.open_spill(tmp_path, mode, key)
        assert info.value.errno == errno.EISDIR, mode
        assert str(tmp_path) in str(info.value)
    with pytest.raises(OSError) as info:
        exitless.inspect(tmp_path)
    assert info.value.errno == errno.EISDIR


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04" + bytes(200),  # a zip file
        b"hello, this is a plain text file that is long enough to have a header\n" * 4,
        b"\x00" * 500,
        b"not sealed",  # shorter than a header, not a magic prefix
        b"X",
        b"EXLX" + bytes(100),
    ],
)
def test_a_file_that_is_not_sealed_is_a_format_error_naming_the_path(tmp_path, key, content):
    path = tmp_path / "plain.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        exitless.open_spill(path, "rb", key)
    assert str(path) in str(info.value)
    assert "not an exitless sealed stream" in str(info.value)
    with pytest.raises(FormatError) as info:
        exitless.inspect(path)
    assert str(path) in str(info.value)
    with pytest.raises(FormatError):
        exitless.open_bytes(content, key)


@pytest.mark.parametrize("cut", [0, 1, 4, 10, 67])
def test_empty_file_and_header_prefixes_are_integrity_errors(tmp_path, key, sealed_file, cut):
    path = tmp_path / "cut"
    path.write_bytes(sealed_file.read_bytes()[:cut])
    with pytest.raises(IntegrityError, match="truncated") as info:
        exitless.open_spill(path, "rb", key, b"ctx")
    assert str(path) in str(info.value)
    with pytest.raises(IntegrityError):
        exitless.inspect(path)
    with pytest.raises(IntegrityError, match="truncated"):
        exitless.open_bytes(path.read_bytes(), key, b"ctx")
    if cut == 0:
        assert "empty" in str(info.value)


@pytest.mark.parametrize("version", [0, 2, 3, 0x7F, 0xFF])
def test_unsupported_version_is_a_format_error(tmp_path, key, sealed_file, version):
    blob = bytearray(sealed_file.read_bytes())
    blob[4] = version
    path = tmp_path / "v"
    path.write_bytes(blob)
    for call in (lambda: exitless.open_spill(path, "rb", key, b"ctx"), lambda: exitless.inspect(path)):
        with pytest.raises(FormatError, match="version") as info:
            call()
        assert str(path) in str(info.value)
    with pytest.raises(FormatError, match="version"):
        exitless.open_bytes(bytes(blob), key, b"ctx")


@pytest.mark.parametrize(
    "offset,value,words",
    [
        (5, 0, "AEAD"),
        (5, 3, "AEAD"),
        (6, 1, "header length"),
        (7, 0x45, "header length"),
        (67, 1, "reserved"),
    ],
)
def test_other_header_rules_are_format_errors(tmp_path, key, sealed_file, offset, value, words):
    blob = bytearray(sealed_file.read_bytes())
    blob[offset] = value
    path = tmp_path / "h"
    path.write_bytes(blob)
    with pytest.raises(FormatError, match=words):
        exitless.open_spill(path, "rb", key, b"ctx")


def test_wrong_key_and_context_messages_name_file_and_segment(sealed_file, key):
    with pytest.raises(IntegrityError) as info:
        exitless.open_spill(sealed_file, "rb", exitless.generate_key(), b"ctx")
    message = str(info.value)
    assert str(sealed_file) in message and "segment" in message and "authentication failed" in message
    with pytest.raises(IntegrityError):
        exitless.open_spill(sealed_file, "rb", key, b"other")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("backend", ["uring", "ocall", "switchless", "sync"])
def test_io_error_while_writing_is_an_os_error_and_poisons_the_writer(key, backend):
    # Writes are pipelined (queue_depth segments in flight), so a failed segment
    # write surfaces at a later write or at close, never later than close.
    w = exitless.open_spill("/dev/full", "wb", key, segment_size=256, backend=backend)
    with pytest.raises(OSError) as info:
        w.write(b"x" * 1000)  # segment 0 is submitted once the 173rd byte arrives
        w.close()
    assert info.value.errno == errno.ENOSPC
    assert "/dev/full" in str(info.value) and "segment 0" in str(info.value)
    if not w.closed:
        with pytest.raises(ValueError, match="earlier write failed"):
            w.write(b"more")
        with pytest.raises((ValueError, OSError, ExitlessError)):
            w.close()  # cannot complete the stream
    assert w.closed
    # a failure only at close (the final segment) is reported by close, and by a with block
    w = exitless.open_spill("/dev/full", "wb", key, segment_size=256, backend=backend)
    w.write(b"short")
    with pytest.raises(OSError) as info:
        w.close()
    assert info.value.errno == errno.ENOSPC and w.closed
    with pytest.raises(OSError), exitless.open_spill("/dev/full", "wb", key, backend=backend) as w:
        w.write(b"abc")


# ----------------------------------------------------------------------------- closed objects


def test_operations_on_a_closed_writer_raise_value_error(tmp_path, key):
    w = exitless.open_spill(tmp_path / "w", "wb", key)
    w.write(b"x")
    w.close()
    assert w.closed
    for op in (lambda: w.write(b"y"), w.tell, w.flush, lambda: w.write(b"")):
        with pytest.raises(ValueError, match="closed"):
            op()
    w.close()  # idempotent
    w.abort()  # a no-op once closed: does not undo the finished stream
    assert exitless.open_bytes((tmp_path / "w").read_bytes(), key) == b"x"
    with pytest.raises(ValueError), w:
        pass


def test_operations_on_a_closed_reader_raise_value_error(sealed_file, key):
    r = exitless.open_spill(sealed_file, "rb", key, b"ctx")
    r.close()
    assert r.closed
    for op in (
        r.read,
        lambda: r.read(5),
        r.readall,
        lambda: r.readinto(bytearray(4)),
        lambda: r.seek(0),
        r.tell,
        r.readline,
    ):
        with pytest.raises(ValueError, match="closed"):
            op()
    r.close()


@pytest.mark.parametrize("read_first", [False, True])
def test_operations_on_a_closed_spill_file_raise_value_error(tmp_path, key, read_first):
    f = exitless.open_spill(tmp_path / "s", "w+b", key)
    f.write(b"abc")
    if read_first:
        f.seek(0)
    f.close()
    for op in (
        lambda: f.write(b"x"),
        f.read,
        lambda: f.readinto(bytearray(2)),
        lambda: f.seek(0),
        f.tell,
        f.flush,
    ):
        with pytest.raises(ValueError, match="closed"):
            op()
    assert exitless.open_bytes((tmp_path / "s").read_bytes(), key) == b"abc"


def test_write_after_read_is_unsupported_operation(tmp_path, key):
    with exitless.open_spill(tmp_path / "s", "w+b", key) as f:
        f.write(b"abc")
        f.read()
        with pytest.raises(io.UnsupportedOperation, match="read-only"):
            f.write(b"x")
        assert isinstance(io.UnsupportedOperation(), OSError)


def test_reader_is_not_writable(sealed_file, key):
    with exitless.open_spill(sealed_file, "rb", key, b"ctx") as r:
        assert not r.writable()
        with pytest.raises((io.UnsupportedOperation, NotImplementedError, AttributeError)):
            r.write(b"x")
        assert r.read() != b""  # the file is untouched


# ----------------------------------------------------------------------------- the Key class


def secret_forms(secret: bytes) -> list[str]:
    """Ways key bytes could show up in text."""
    return [
        secret.hex(),
        secret.hex().upper(),
        secret[:8].hex(),  # even a quarter of the key
        secret[-8:].hex(),
        base64.b64encode(secret).decode(),
        repr(secret)[2:-1][:40],
        secret.decode("latin-1"),
        " ".join(f"{b:02x}" for b in secret[:8]),
    ]


def assert_no_secret(text: str, secret: bytes, what: str = "") -> None:
    for form in secret_forms(secret):
        assert form not in text, f"key bytes ({form[:12]}...) in {what}: {text[:200]}"


def test_key_repr_and_str_hide_the_secret(key):
    secret = key.secret_bytes()
    # %-formatting is one of the ways a key could reach a log: checked on purpose.
    percent = "%s" % key  # noqa: UP031
    for text in (repr(key), str(key), f"{key}", f"{key!r}", percent, repr([key]), repr({"k": key})):
        assert_no_secret(text, secret, "repr")
        assert key.key_id.hex() in text
    assert "secret hidden" in repr(key)


def test_key_cannot_be_pickled_or_copied(key):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(key, protocol=protocol)
    with pytest.raises(TypeError):
        copy.copy(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [key]})


def test_key_equality_and_hash(key):
    same = exitless.Key(key.secret_bytes())
    assert same == key and hash(same) == hash(key)
    assert key != exitless.generate_key()
    assert key != key.secret_bytes()  # a Key is not equal to its raw bytes


def test_key_save_load_round_trip_and_permissions(tmp_path, key):
    path = tmp_path / "k"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("exitless-key-v1:")
    loaded = exitless.Key.load(path)
    assert loaded == key and loaded.key_id == key.key_id
    assert exitless.Key.load(str(path)) == key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o001])
def test_key_load_refuses_files_others_can_access(tmp_path, key, mode):
    path = tmp_path / "k"
    key.save(path)
    os.chmod(path, mode)
    with pytest.raises(PermissionError) as info:
        exitless.Key.load(path)
    message = str(info.value)
    assert str(path) in message and "chmod 600" in message and f"{mode:o}" in message
    assert_no_secret(message, key.secret_bytes(), "PermissionError")


def test_key_save_refuses_to_overwrite(tmp_path, key):
    path = tmp_path / "k"
    key.save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        exitless.generate_key().save(path)
    assert path.read_bytes() == before
    other = tmp_path / "existing"
    other.write_text("precious")
    with pytest.raises(FileExistsError):
        key.save(other)
    assert other.read_text() == "precious"


@pytest.mark.parametrize(
    "make_content",
    [
        lambda s: s.hex(),  # no prefix
        lambda s: "exitless-key-v2:" + s.hex(),
        lambda s: "exitless-key-v1:" + s.hex()[:-2],  # 31 bytes
        lambda s: "exitless-key-v1:" + s.hex() + "00",  # 33 bytes
        lambda s: "exitless-key-v1:" + s.hex()[:-1] + "g",  # not hex
        lambda s: "",
    ],
)
def test_key_load_rejects_malformed_files_without_echoing_them(tmp_path, key, make_content):
    path = tmp_path / "k"
    path.write_text(make_content(key.secret_bytes()) + "\n")
    os.chmod(path, 0o600)
    with pytest.raises(ValueError) as info:
        exitless.Key.load(path)
    assert str(path) in str(info.value) or "32 bytes" in str(info.value)
    assert_no_secret(str(info.value), key.secret_bytes(), "Key.load error")
    assert_no_secret(repr(info.value), key.secret_bytes(), "Key.load error")


def test_key_load_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        exitless.Key.load(tmp_path / "nope")


def test_wiped_key_is_unusable(tmp_path, key):
    key.wipe()
    for call in (
        lambda: exitless.seal_bytes(b"x", key),
        lambda: exitless.open_spill(tmp_path / "w", "wb", key),
        key.secret_bytes,
    ):
        with pytest.raises(ValueError, match="wiped"):
            call()


# ----------------------------------------------------------------------------- no key bytes anywhere


def test_no_error_message_or_repr_contains_key_bytes(tmp_path):
    key = exitless.generate_key()
    secret = key.secret_bytes()
    other = exitless.generate_key()
    texts: dict[str, str] = {}

    def collect(name, call):
        try:
            result = call()
        except BaseException as e:
            texts[name] = f"{type(e).__name__}: {e} | {e!r} | {e.args!r}"
            if e.__cause__ is not None or e.__context__ is not None:
                texts[name] += f" | {e.__cause__!r} | {e.__context__!r}"
        else:
            texts[name] = f"no error: {result!r}"

    good = tmp_path / "good"
    with exitless.open_spill(good, "wb", key, b"ctx", segment_size=256) as w:
        w.write(os.urandom(2000))
        texts["writer repr"] = repr(w)
    blob = good.read_bytes()
    tampered = bytearray(blob)
    tampered[600] ^= 1
    (tmp_path / "tampered").write_bytes(tampered)
    (tmp_path / "cut").write_bytes(blob[:512])
    (tmp_path / "plain").write_bytes(b"plain text" * 20)
    (tmp_path / "keyfile-in-wrong-place").write_bytes(secret * 4)  # a file holding the key

    collect("wrong key", lambda: exitless.open_spill(good, "rb", other, b"ctx"))
    collect("wrong key raw", lambda: exitless.open_spill(good, "rb", other.secret_bytes(), b"ctx"))
    collect("wrong context", lambda: exitless.open_spill(good, "rb", key, b"nope"))
    collect("tampered", lambda: exitless.open_spill(tmp_path / "tampered", "rb", key, b"ctx").read())
    collect("truncated", lambda: exitless.open_spill(tmp_path / "cut", "rb", key, b"ctx"))
    collect("plain", lambda: exitless.open_spill(tmp_path / "plain", "rb", key, b"ctx"))
    collect(
        "key bytes as a file", lambda: exitless.open_spill(tmp_path / "keyfile-in-wrong-place", "rb", key)
    )
    collect("missing", lambda: exitless.open_spill(tmp_path / "missing", "rb", key))
    collect("directory", lambda: exitless.open_spill(tmp_path, "wb", key))
    collect("key too short", lambda: exitless.open_spill(good, "rb", secret[:31]))
    collect("key too long", lambda: exitless.open_spill(good, "rb", secret + b"\x00"))
    collect("key doubled", lambda: exitless.seal_bytes(b"", secret * 2))
    collect("key as hex str", lambda: exitless.open_spill(good, "rb", secret.hex()))
    collect("Key from hex bytes", lambda: exitless.Key(secret.hex().encode()))
    collect("key as list", lambda: exitless.seal_bytes(b"", list(secret)))
    collect("key as context type", lambda: exitless.seal_bytes(b"", key, context=list(secret)))
    collect("open_bytes wrong key", lambda: exitless.open_bytes(blob, other, b"ctx"))
    collect("open_bytes tampered", lambda: exitless.open_bytes(bytes(tampered), key, b"ctx"))
    collect("bad segment size", lambda: exitless.seal_bytes(b"", key, segment_size=5))
    collect("bad algorithm", lambda: exitless.seal_bytes(b"", key, algorithm="rot13"))
    collect("bad key_id", lambda: exitless.seal_bytes(b"", key, key_id=secret))
    collect("bad mode", lambda: exitless.open_spill(good, "r", key))
    collect("pickle", lambda: pickle.dumps(key))
    w = exitless.open_spill(tmp_path / "closed", "wb", key)
    w.close()
    collect("closed writer", lambda: w.write(b"x"))
    texts["key repr"] = repr(key)
    texts["key str"] = str(key)
    with exitless.open_spill(good, "rb", key, b"ctx") as r:
        texts["reader repr"] = repr(r)
    with exitless.open_spill(tmp_path / "spill", "w+b", key, b"ctx") as f:
        texts["spill repr"] = repr(f)
    texts["inspect"] = repr(exitless.inspect(good))

    assert len(texts) >= 30
    for name, text in texts.items():
        assert not text.startswith("no error") or name in ("key bytes as a file",), (name, text)
        assert_no_secret(text, secret, name)
        assert_no_secret(text, other.secret_bytes(), name)
