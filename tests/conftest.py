"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

import exitless


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    """A fresh data key saved as a 0600 key file (``exitless keygen``'s format)."""
    path = tmp_path / "data.key"
    exitless.generate_key().save(path)
    return path
