"""Tables never hide a name a user must type: at 80 columns, piped, every sensor name, camera string
and reference source is printed whole, without an ellipsis (issue 17)."""

from __future__ import annotations

import pytest
from xenoedge.cli.main import main


def _run(argv: list[str], capsys) -> str:
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    out = capsys.readouterr()
    return out.out + out.err


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_sensors_lists_every_name_and_signature_whole(capsys):
    from xenoedge.sensors import SENSORS

    output = _run(["sensors"], capsys)
    assert "…" not in output
    for profile in SENSORS.values():
        assert f" {profile.name} " in output and f" {profile.signature} " in output


def test_devices_list_prints_every_camera_form_and_example_whole(capsys):
    from xenoedge.devices.open_camera import CAMERA_KINDS

    output = _run(["devices", "list", "--pattern", "/nonexistent/video*"], capsys)
    assert "…" not in output
    for kind in CAMERA_KINDS.values():
        assert f" {kind.form} " in output and f" {kind.example} " in output


def test_calibrate_check_prints_capture_time_and_source_whole(tmp_path, capsys):
    from xenoedge.calibration.store import load_references

    refs = tmp_path / "refs.npz"
    for kind in ("dark", "white"):
        _run(["calibrate", kind, "--sensor", "mosaic-5x5-nir", "--frames", "2", "--out", str(refs)], capsys)
    loaded = load_references(refs)
    output = _run(["calibrate", "check", str(refs)], capsys)
    assert "…" not in output and "references verified" in output
    assert f" {loaded.dark_meta.captured_at} " in output and f" {loaded.dark_meta.source} " in output
