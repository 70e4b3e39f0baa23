"""ReplayCamera: playlist order, frame kinds, labels, looping, references, errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from xenoedge.devices.formats import write_cube
from xenoedge.devices.formats.envi import write_envi, write_specim_capture
from xenoedge.devices.formats.label_png import write_label_png
from xenoedge.devices.replay import ReplayCamera, discover, label_path_for

from xenoedge.errors import CameraError, CameraExhaustedError
from xenoedge.sensors import get_sensor

TIVITA = get_sensor("tivita")
WL = TIVITA.wavelengths()
H, W, C = 4, 5, TIVITA.n_bands


def _reflectance(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((H, W, C), dtype=np.float32)


def _raw(seed: int, lines: int = H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, (lines, W, C), dtype=np.uint16)


def _fake_clock(start_ns: int = 1_000_000, step_ns: int = 40_000_000):
    counter = itertools.count(start_ns, step_ns)
    return lambda: next(counter)


@pytest.fixture
def folder(tmp_path):
    """Four captures in four formats, written out of order, plus things that are not captures."""
    write_cube(tmp_path / "d.npz", _raw(4), WL)
    write_cube(tmp_path / "a_SpecCube.dat", _reflectance(1))
    write_cube(tmp_path / "c.npy", _reflectance(3).astype(np.float64))
    write_cube(tmp_path / "b.hdr", _raw(2), WL)
    (tmp_path / "notes.txt").write_text("not a cube")
    (tmp_path / "labels").mkdir()
    write_label_png(tmp_path / "labels" / "a.png", np.full((H, W), 2, np.uint8))
    write_label_png(tmp_path / "labels" / "d.png", np.eye(H, W, dtype=np.uint8))
    return tmp_path


def test_playlist_order_kinds_and_metadata(folder):
    clock = _fake_clock()
    with ReplayCamera(TIVITA, folder, camera_id="cam0", clock_ns=clock) as cam:
        assert [p.name for p in cam.files] == ["a_SpecCube.dat", "b.hdr", "c.npy", "d.npz"]
        frames = [cam.read() for _ in range(4)]
    assert [f.kind for f in frames] == ["reflectance", "raw", "reflectance", "raw"]
    assert [f.data.dtype for f in frames] == [np.float32, np.uint16, np.float32, np.uint16]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.timestamp_us for f in frames] == [1000, 41000, 81000, 121000]
    assert all(f.camera_id == "cam0" and f.sensor == "tivita" for f in frames)
    assert [f.meta["format"] for f in frames] == ["tivita", "envi", "npy", "npz"]
    assert frames[0].source.endswith("a_SpecCube.dat")
    np.testing.assert_array_equal(frames[0].data, _reflectance(1))
    np.testing.assert_array_equal(frames[1].data, _raw(2))
    np.testing.assert_array_equal(frames[2].data, _reflectance(3))
    for f in frames:
        np.testing.assert_array_equal(f.wavelengths_nm, WL)


def test_labels_by_naming_rule(folder):
    assert label_path_for(folder / "a_SpecCube.dat") == folder / "labels" / "a.png"
    assert label_path_for(folder / "scan.hdr") == folder / "labels" / "scan.png"
    with ReplayCamera(TIVITA, folder) as cam:
        labels = [cam.read().labels for _ in range(4)]
    assert labels[0].dtype == np.uint8 and (labels[0] == 2).all()
    assert labels[1] is None and labels[2] is None
    np.testing.assert_array_equal(labels[3], np.eye(H, W, dtype=np.uint8))


def test_end_without_loop(folder):
    with ReplayCamera(TIVITA, folder) as cam:
        for _ in range(4):
            cam.read()
        with pytest.raises(CameraExhaustedError, match=re.escape(str(folder))):
            cam.read()


def test_loop_wraps_around(folder):
    with ReplayCamera(TIVITA, folder, loop=True) as cam:
        frames = [cam.read() for _ in range(9)]
    assert [f.meta["file_index"] for f in frames] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert [f.meta["loop_pass"] for f in frames] == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert frames[8].index == 8
    np.testing.assert_array_equal(frames[4].data, frames[0].data)


def test_empty_or_unsupported_folder(tmp_path):
    with pytest.raises(CameraError, match=re.escape(str(tmp_path)) + r".*_SpecCube\.dat.*\.hdr.*\.npy.*\.npz"):
        ReplayCamera(TIVITA, tmp_path).open()
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / ".hidden.npy").write_bytes(b"")
    with pytest.raises(CameraError, match="holds no supported file"):
        ReplayCamera(TIVITA, tmp_path).open()
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera(TIVITA, tmp_path / "missing").open()


def test_band_count_mismatch_names_file_and_next_read_moves_on(tmp_path):
    write_cube(tmp_path / "a.npz", np.zeros((H, W, 7), np.uint16), np.linspace(500, 1000, 7))
    write_cube(tmp_path / "b.npy", _reflectance(0))
    with ReplayCamera(TIVITA, tmp_path) as cam:
        with pytest.raises(CameraError, match=r"a\.npz has 7 bands but sensor 'tivita' has 100"):
            cam.read()
        assert cam.read().source.endswith("b.npy")


def test_wavelength_mismatch_names_file(tmp_path):
    write_cube(tmp_path / "shifted.npz", _raw(0), WL + 5)
    with ReplayCamera(TIVITA, tmp_path) as cam, pytest.raises(CameraError, match=r"shifted\.npz.*5\.00 nm"):
        cam.read()


def test_corrupt_file_becomes_camera_error(tmp_path):
    (tmp_path / "x_SpecCube.dat").write_bytes(b"\x00\x00\x00\x01")
    with (
        ReplayCamera(TIVITA, tmp_path) as cam,
        pytest.raises(CameraError, match=r"x_SpecCube\.dat.*truncated"),
    ):
        cam.read()


def test_integer_data_outside_uint16(tmp_path):
    data = np.zeros((H, W, C), np.int32)
    data[0, 0, 0] = -3
    write_cube(tmp_path / "neg.npy", data)
    with (
        ReplayCamera(TIVITA, tmp_path) as cam,
        pytest.raises(CameraError, match=r"neg\.npy.*outside 0\.\.65535"),
    ):
        cam.read()


def test_bad_labels(tmp_path):
    write_cube(tmp_path / "s.npy", _reflectance(0))
    write_cube(tmp_path / "t.npy", _reflectance(1))
    (tmp_path / "labels").mkdir()
    write_label_png(tmp_path / "labels" / "s.png", np.zeros((H + 1, W), np.uint8))
    write_label_png(tmp_path / "labels" / "t.png", np.full((H, W), 9, np.uint8))
    with ReplayCamera(TIVITA, tmp_path, n_labels=4) as cam:
        with pytest.raises(CameraError, match=r"s\.png is 5x5 but s\.npy is 4x5"):
            cam.read()
        with pytest.raises(CameraError, match=r"t\.png.*label ids 9"):
            cam.read()


def test_specim_folders_play_with_references(tmp_path):
    for i, name in enumerate(["scan2", "scan1"]):
        write_specim_capture(tmp_path / name, name, _raw(i), _raw(10 + i, 2), _raw(20 + i, 3), WL)
    assert [p.name for p in discover(tmp_path)] == ["scan1.hdr", "scan2.hdr"]
    with ReplayCamera(TIVITA, tmp_path) as cam:
        dark_first = cam.read_reference("dark")  # before any read: the first capture's
        frame = cam.read()
        white = cam.read_reference("white")
        frame2 = cam.read()
        dark2 = cam.read_reference("dark")
    assert frame.kind == "raw" and frame.source.endswith("scan1.hdr")
    np.testing.assert_array_equal(frame.data, _raw(1))
    np.testing.assert_array_equal(dark_first.data, _raw(11, 2))
    assert dark_first.meta["reference"] == "dark" and dark_first.source.endswith("DARKREF_scan1.hdr")
    np.testing.assert_array_equal(white.data, _raw(21, 3))
    assert frame2.source.endswith("scan2.hdr")
    np.testing.assert_array_equal(dark2.data, _raw(10, 2))


def test_reference_missing(folder):
    with ReplayCamera(TIVITA, folder) as cam:
        cam.read()
        with pytest.raises(CameraError, match=r"no dark reference for .*a_SpecCube\.dat"):
            cam.read_reference("dark")
        cam.read()
        with pytest.raises(CameraError, match=r"WHITEREF_b\.hdr"):
            cam.read_reference("white")


def test_read_before_open(folder):
    with pytest.raises(CameraError, match="not open"):
        ReplayCamera(TIVITA, folder).read()


def test_reference_band_count_checked(tmp_path):
    write_specim_capture(tmp_path / "s", "s", _raw(0), _raw(1, 2), _raw(2, 2), WL)
    cap = tmp_path / "s" / "capture"
    for name in ("DARKREF_s.hdr", "DARKREF_s.raw"):
        (cap / name).unlink()
    write_envi(cap / "DARKREF_s.hdr", np.zeros((2, W, 3), np.uint16), None, data_suffix=".raw")
    with (
        ReplayCamera(TIVITA, tmp_path) as cam,
        pytest.raises(CameraError, match=r"DARKREF_s\.hdr has 3 bands"),
    ):
        cam.read_reference("dark")


def test_reflectance_with_nan_or_strongly_negative_values_is_refused(tmp_path):
    sensor = get_sensor("tivita")
    cube = np.full((4, 5, 100), 0.3, np.float32)
    cube[1, 1, 7] = np.nan
    write_envi(tmp_path / "a_nan.hdr", cube, sensor.wavelengths())  # ENVI stores NaN as it is
    cube[1, 1, 7] = -0.4
    write_envi(tmp_path / "b_negative.hdr", cube, sensor.wavelengths())
    cube[1, 1, 7] = -0.01  # small negative: dark noise over a weak signal, accepted
    write_cube(tmp_path / "c_fine.npz", cube, sensor.wavelengths())
    with ReplayCamera(sensor, tmp_path) as cam:
        with pytest.raises(CameraError, match=r"a_nan\.hdr: 1 NaN/inf"):
            cam.read()
        with pytest.raises(CameraError, match=r"b_negative\.hdr: 1 reflectance values below"):
            cam.read()
        assert cam.read().data[1, 1, 7] == pytest.approx(-0.01)
