"""``hierseg data check`` as a user runs it."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.data.test_readers import put_image, put_label


def test_data_check_reports_ok_and_problems(tmp_path):
    put_image(tmp_path / "training/images/k1.jpg")
    put_label(tmp_path / "training/v1.2/labels/k1.png", [1, 65])
    result = run_cli("data", "check", str(tmp_path), "--dataset", "mapillary", "--split", "training")
    assert result.returncode == 0, result.stderr
    assert "mapillary: 1 samples ok, 0 problems" in result.stdout

    put_image(tmp_path / "training/images/k2.jpg")
    put_label(tmp_path / "training/v1.2/labels/k2.png", [70])
    result = run_cli("data", "check", str(tmp_path), "--dataset", "mapillary", "--split", "training")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("k2.png: value 70 is not a mapillary label id")
    result = run_cli("data", "check", str(tmp_path), "--dataset", "mapillary", "--split", "training", "--skip")
    assert result.returncode == 2 and "1 samples ok, 1 problems" in result.stdout
