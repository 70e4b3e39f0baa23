"""`xenoedge calibrate` end to end: simulated camera, real files, Specim folders."""

import json
import subprocess
import sys

import numpy as np
import pytest
from xenoedge.calibration.store import load_references
from xenoedge.devices.formats import read_cube, write_cube, write_dark_pattern, write_specim_capture


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def refs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refs") / "refs.npz"
    for kind in ("dark", "white"):
        result = run_cli(
            "calibrate", kind, "--sensor", "mosaic-5x5-nir", "--frames", "4", "--seed", "2", "--out", str(path)
        )
        assert result.returncode == 0, result.stderr
    return path


def test_dark_then_white_store_verified_references(refs_file):
    refs = load_references(refs_file, camera_id="sim-mosaic-5x5-nir-2")
    assert refs.complete and refs.dark.shape == refs.white.shape == (217, 409, 25)
    assert refs.dark_meta.frames == 4 and refs.white_meta.source == "camera"
    result = run_cli("calibrate", "check", str(refs_file), "--camera-id", "sim-mosaic-5x5-nir-2")
    assert result.returncode == 0 and "references verified" in result.stderr


def test_white_before_dark_and_wrong_camera_are_refused(tmp_path, refs_file):
    result = run_cli("calibrate", "white", "--sensor", "mosaic-5x5-nir", "--out", str(tmp_path / "r.npz"))
    assert result.returncode == 2 and "capture the dark reference first" in result.stderr
    result = run_cli("calibrate", "check", str(refs_file), "--camera-id", "or-camera-7")
    assert result.returncode == 2 and "or-camera-7" in result.stderr and "Traceback" not in result.stderr


def test_overexposed_white_is_rejected_and_not_stored(tmp_path):
    path = tmp_path / "refs.npz"
    assert (
        run_cli("calibrate", "dark", "--sensor", "mosaic-5x5-nir", "--frames", "2", "--out", str(path)).returncode == 0
    )
    before = path.read_bytes()
    result = run_cli(
        "calibrate", "white", "--sensor", "mosaic-5x5-nir", "--frames", "2", "--exposure", "40", "--out", str(path)
    )
    assert result.returncode == 1
    assert "FAIL" in result.stderr and "saturat" in result.stderr
    assert path.read_bytes() == before


def test_check_flags_a_corrupted_file(tmp_path, refs_file):
    data = bytearray(refs_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    result = run_cli("calibrate", "check", str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr


def _specim_folder(root, rng):
    lines, width, bands = 30, 40, 50
    wavelengths = np.linspace(400, 1000, bands).astype(np.float32)
    truth = rng.uniform(0.05, 0.9, (lines, width, bands)).astype(np.float32)
    dark_col = 100 + rng.normal(0, 2, (width, bands))
    signal_col = 2500 + 800 * np.sin(np.linspace(0, 3, bands))[None, :] + rng.normal(0, 20, (width, bands))
    noisy = lambda a: np.rint(a + rng.normal(0, 1.5, a.shape)).astype(np.uint16)  # noqa: E731
    raw = noisy(truth * signal_col + dark_col)
    raw[3, 4, :] = 4095  # one saturated pixel (12-bit sensor)
    dark = noisy(np.broadcast_to(dark_col, (20, width, bands)))
    white = noisy(np.broadcast_to(signal_col + dark_col, (20, width, bands)))
    write_specim_capture(root, "leaf", raw, dark, white, wavelengths)
    return truth


def test_apply_calibrates_a_specim_capture_folder_end_to_end(tmp_path):
    truth = _specim_folder(tmp_path / "scan", np.random.default_rng(0))
    result = run_cli("calibrate", "apply", str(tmp_path / "scan"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    cube, wl = read_cube(tmp_path / "out" / "leaf_reflectance.npz")
    assert cube.shape == truth.shape and wl.shape == (50,)
    ok = np.ones(truth.shape[:2], bool)
    ok[3, 4] = False
    assert np.median(np.abs(cube - truth)[ok]) < 0.005
    report = json.loads((tmp_path / "out" / "leaf_report.json").read_text())
    assert report["saturated_pixel_fraction"] == pytest.approx(1 / (30 * 40))
    assert report["references"] == "the capture's own DARKREF/WHITEREF"
    for picture in ("leaf_rgb.png", "leaf_saturation.png"):
        assert (tmp_path / "out" / picture).stat().st_size > 500


def test_apply_with_a_references_file_and_its_refusals(tmp_path, refs_file):
    from xenoedge.sensors import get_sensor

    sensor = get_sensor("mosaic-5x5-nir")
    refs = load_references(refs_file)
    raw = np.rint(refs.dark + 0.4 * (refs.white - refs.dark)).astype(np.uint16)
    write_cube(tmp_path / "frame.npz", raw, sensor.wavelengths())
    result = run_cli(
        "calibrate", "apply", str(tmp_path / "frame.npz"), "--refs", str(refs_file), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    cube, _ = read_cube(tmp_path / "o" / "frame_reflectance.npz")
    assert np.median(np.abs(cube - 0.4)) < 0.005

    write_cube(tmp_path / "small.npz", raw[:10], sensor.wavelengths())
    result = run_cli(
        "calibrate", "apply", str(tmp_path / "small.npz"), "--refs", str(refs_file), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2 and "does not fit" in result.stderr and "small.npz" in result.stderr
    write_cube(tmp_path / "refl.npz", raw.astype(np.float32), sensor.wavelengths())
    result = run_cli(
        "calibrate", "apply", str(tmp_path / "refl.npz"), "--refs", str(refs_file), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2 and "already reflectance" in result.stderr
    result = run_cli("calibrate", "apply", str(tmp_path / "frame.npz"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "--refs" in result.stderr
    result = run_cli(
        "calibrate", "apply", str(tmp_path / "missing.npz"), "--refs", str(refs_file), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2 and "missing.npz" in result.stderr


def test_import_dark_pattern_then_check_reports_missing_white(tmp_path):
    from xenoedge.sensors import get_sensor

    h, _, c = get_sensor("tivita").cube_shape
    write_dark_pattern(tmp_path / "DarkPattern.dpic", np.full((h, c), 61.5))
    out = tmp_path / "refs.npz"
    result = run_cli(
        "calibrate",
        "import",
        "--dark-pattern",
        str(tmp_path / "DarkPattern.dpic"),
        "--camera-id",
        "tivita-01",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert load_references(out).dark.shape == (h, 1, c)
    result = run_cli("calibrate", "check", str(out))
    assert result.returncode == 1 and "missing" in result.stderr
    write_dark_pattern(tmp_path / "Short.dpic", np.full((10, c), 61.5))
    result = run_cli(
        "calibrate", "import", "--dark-pattern", str(tmp_path / "Short.dpic"), "--camera-id", "x", "--out", str(out)
    )
    assert result.returncode == 2 and "DarkPattern" in result.stderr
