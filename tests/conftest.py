"""Fixtures shared by the test modules, and the rule for tests that need Java.

Markers (registered in pyproject.toml):

- ``slow``: seconds or more (Spark, stress, big streams): ``pytest -m "not slow"`` is
  the quick loop; ``make test`` runs everything.
- ``java``: needs a Java runtime (Spark). Without one such a test is skipped, with
  the reason, unless ``EXITLESS_REQUIRE_JAVA=1`` (set by ``make test``): then it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import exitless
from spark_support import java_missing, java_required, java_verdict


@pytest.fixture
def key() -> exitless.Key:
    """A fresh random data key."""
    return exitless.generate_key()


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    """A fresh data key saved as a 0600 key file (``exitless keygen``'s format)."""
    path = tmp_path / "data.key"
    exitless.generate_key().save(path)
    return path


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    """A new local KMS keyring (``LocalKms.init``) with one primary key."""
    from exitless.kms import LocalKms

    path = tmp_path / "keyring.json"
    LocalKms.init(path).close()
    return path


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``java`` test without Java: skipped, or failed under EXITLESS_REQUIRE_JAVA=1
    (before its fixtures start anything)."""
    if item.get_closest_marker("java") is None:
        return
    verdict = java_verdict(java_missing(), java_required())
    if verdict is not None:
        action, reason = verdict
        if action == "fail":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
