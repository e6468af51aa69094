"""Sealed CSV/JSON datasets read and written by plain ``spark.read``/``df.write`` through
the sealed file codec (``io.exitless.spark.SealedHadoopCodec``, ``.exls``), with each
KMS kind: the local keyring and PKCS#11 (SoftHSM2). tests/spark_dataset_job.py runs
the application in its own process (a token's configuration must be in the JVM's
environment when it starts) and reports; here each report is checked:

- the files end in ``.csv.exls``/``.json.exls``, are sealed streams of format version 2
  (magic, version 2), hold no canary, and read back equal;
- after a key rotation new files carry the new key's id, and old and new files read;
- a foreign KMS is refused; Python opens a JVM-written file and Spark a Python-sealed one;
- a flipped byte fails the read with the integrity error, never rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exitless.kms import LocalKms

JOB = Path(__file__).with_name("spark_dataset_job.py")
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def run(root: Path, kms: str, other: str, env: dict[str, str]) -> dict[str, Any]:
    out = root / "report.json"
    proc = subprocess.run(
        [sys.executable, str(JOB), str(out), "--kms", kms, "--other-kms", other, "--dir", str(root / "data")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    report: dict[str, Any] = json.loads(out.read_text())
    report["stderr"] = proc.stderr
    return report


def check(report: dict[str, Any]) -> None:
    for key in ("a_csv_files", "a_json_files", "b_csv_files"):
        files = report[key]
        assert len(files) >= 3, files
        ext = ".json.exls" if "json" in key else ".csv.exls"
        for f in files:
            assert f["name"].endswith(ext), f
            assert f["head"] == b"EXLS\x02".hex(), f  # magic, format version 2
            assert not f["canary"], f
    assert report["a_csv_equal"] and report["a_json_equal"]
    old_ids = {f["key_id"] for f in report["a_csv_files"]}
    new_ids = {f["key_id"] for f in report["b_csv_files"]}
    assert new_ids == {report["rotated_to"]} and not old_ids & new_ids
    assert report["after_rotation_count"] == 6000 and report["after_rotation_equal"]
    assert report["foreign_error"] and "KmsException" in report["foreign_error"], report["foreign_error"]
    assert report["python_read_header"] == "id,g,note" and report["python_read_lines"] > 0
    assert report["spark_read_python_file"] == [[1, 2, "from python"], [3, 4, "also"]]
    assert report["tamper_error"] and "SealIntegrityException" in report["tamper_error"], report
    assert "authentication failed" in report["tamper_error"]


@pytest.mark.java
@pytest.mark.slow
def test_sealed_datasets_with_the_local_keyring(tmp_path: Path) -> None:
    LocalKms.init(tmp_path / "ring.json")
    LocalKms.init(tmp_path / "other.json")
    check(run(tmp_path, f"local:{tmp_path / 'ring.json'}", f"local:{tmp_path / 'other.json'}", {}))


@pytest.mark.java
@pytest.mark.slow
def test_sealed_datasets_with_pkcs11_softhsm(tmp_path: Path) -> None:
    if shutil.which("softhsm2-util") is None or not os.path.exists(SOFTHSM_MODULE):
        pytest.fail("needs SoftHSM2 (make system-deps installs it)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {"SOFTHSM2_CONF": str(conf), "EXITLESS_TEST_PIN": "4321"}
    for label in ("datasets", "foreign"):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                "4321",
                "--so-pin",
                "8765",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
    uri = f"pkcs11:module={SOFTHSM_MODULE};token=%s;pin-env=EXITLESS_TEST_PIN"
    # each token needs a primary key: made by the Python KMS in a process of its own
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom exitless.kms import open_kms\nfor u in sys.argv[1:]:\n    open_kms(u).create_key()",
            uri % "datasets",
            uri % "foreign",
        ],
        check=True,
        env={**os.environ, **env},
    )
    check(run(tmp_path, uri % "datasets", uri % "foreign", env))
