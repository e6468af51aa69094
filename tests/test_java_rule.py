"""Tests marked ``java`` (Spark) skip without Java, with the reason, and fail instead
under ``make test`` (``EXITLESS_REQUIRE_JAVA=1``): the decision, where Java is looked
for, and the rule applied by tests/conftest.py to a marked test in a pytest run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_support import REQUIRE_JAVA_ENV, java_missing, java_required, java_verdict

pytest_plugins = ["pytester"]
TESTS = Path(__file__).parent


def test_verdict() -> None:
    assert java_verdict(None, required=False) is None
    assert java_verdict(None, required=True) is None
    action, reason = java_verdict("no java here", required=False) or ("", "")
    assert action == "skip" and "needs Java" in reason and "no java here" in reason
    action, reason = java_verdict("no java here", required=True) or ("", "")
    assert action == "fail" and f"{REQUIRE_JAVA_ENV}=1" in reason


def test_required_only_when_set_to_something_but_0() -> None:
    assert not java_required({})
    assert not java_required({REQUIRE_JAVA_ENV: ""})
    assert not java_required({REQUIRE_JAVA_ENV: "0"})
    assert java_required({REQUIRE_JAVA_ENV: "1"})


def test_java_on_the_path_or_in_java_home(tmp_path: Path) -> None:
    def nowhere(_: str) -> None:
        return None

    assert java_missing({}, which=lambda _: "/usr/bin/java") is None
    assert java_missing({}, which=nowhere) is not None
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    assert java_missing({"JAVA_HOME": str(home)}, which=nowhere) is not None  # not executable
    java.chmod(0o755)
    assert java_missing({"JAVA_HOME": str(home)}, which=nowhere) is None


@pytest.mark.parametrize("required", [False, True])
def test_a_marked_test_without_java(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nmarkers = ["java: needs Java", "slow: slow"]\n')
    pytester.makepyfile(
        """
        import pytest

        started = []

        @pytest.fixture
        def spark():
            started.append(1)  # never: the rule runs before the fixtures

        @pytest.mark.java
        def test_spark(spark):
            pass

        def test_plain():
            assert not started
        """
    )
    monkeypatch.syspath_prepend(str(TESTS))  # the conftest imports spark_support
    empty = pytester.mkdir("empty-path")
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    if required:
        monkeypatch.setenv(REQUIRE_JAVA_ENV, "1")
    else:
        monkeypatch.delenv(REQUIRE_JAVA_ENV, raising=False)
    result = pytester.runpytest("-rsf")
    if required:  # an error in its setup: the run fails
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines([f"*needs Java for PySpark*{REQUIRE_JAVA_ENV}=1 makes that a failure*"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED*needs Java for PySpark (no java on the PATH*"])
        assert result.ret == pytest.ExitCode.OK
    assert os.environ["PATH"] == str(empty)
