"""ENVI cubes and Specim capture folders: round trips, byte layout, errors."""

from __future__ import annotations

import numpy as np
import pytest
from xenoedge.devices.formats import read_cube, write_cube
from xenoedge.devices.formats.envi import (
    find_data_file,
    read_envi,
    read_specim_capture,
    specim_paths,
    write_envi,
    write_specim_capture,
)

from xenoedge.errors import FileFormatError, InvalidCubeError

H, W, C = 6, 5, 8
WL = np.linspace(500.0, 1000.0, C).astype(np.float32)


def _raw(seed: int = 0, lines: int = H) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, (lines, W, C), dtype=np.uint16)


def _header(lines=H, samples=W, bands=C, extra="", dtype_code=12, interleave="bip") -> str:
    return (
        f"ENVI\nsamples = {samples}\nlines = {lines}\nbands = {bands}\nheader offset = 0\n"
        f"file type = ENVI Standard\ndata type = {dtype_code}\ninterleave = {interleave}\n"
        f"byte order = 0\n{extra}"
    )


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16, np.float64])
@pytest.mark.parametrize("interleave", ["bip", "bil", "bsq"])
def test_round_trip_bit_exact(tmp_path, dtype, interleave):
    cube = (np.random.default_rng(2).random((H, W, C)) * 1000).astype(dtype)
    hdr = write_envi(tmp_path / "cube.hdr", cube, WL, interleave=interleave)
    back, wl = read_envi(hdr)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.tobytes() == cube.tobytes()
    assert wl.dtype == np.float32
    np.testing.assert_array_equal(wl, WL)


def test_hand_written_bil_file_orientation(tmp_path):
    # BIL: for each line, for each band, all samples. Value = 100*line + 10*band + sample.
    lines, samples, bands = 2, 3, 4
    stored = np.fromfunction(lambda y, b, x: 100 * y + 10 * b + x, (lines, bands, samples)).astype("<u2")
    (tmp_path / "h.raw").write_bytes(stored.tobytes())
    wl = "wavelength units = Nanometers\nwavelength = { 500, 600, 700, 800 }\n"
    (tmp_path / "h.hdr").write_text(_header(lines, samples, bands, wl, interleave="bil"))
    cube, wavelengths = read_envi(tmp_path / "h.hdr")
    assert cube.shape == (lines, samples, bands)
    assert cube[1, 2, 3] == 100 * 1 + 10 * 3 + 2
    np.testing.assert_array_equal(wavelengths, [500, 600, 700, 800])


def test_big_endian_and_micrometres(tmp_path):
    data = np.arange(2 * 3 * 2, dtype=">f4").reshape(2, 3, 2)
    (tmp_path / "b.img").write_bytes(data.tobytes())
    text = _header(2, 3, 2, "wavelength units = Micrometers\nwavelength = { 0.5, 0.75 }\n", 4)
    (tmp_path / "b.hdr").write_text(text.replace("byte order = 0", "byte order = 1"))
    cube, wl = read_envi(tmp_path / "b.hdr")
    assert cube.dtype == np.float32 and cube.dtype.isnative
    np.testing.assert_array_equal(cube, data.astype(np.float32))
    np.testing.assert_allclose(wl, [500.0, 750.0])


def test_dispatch(tmp_path):
    cube = _raw()
    path = write_cube(tmp_path / "d.hdr", cube, WL)
    back, wl = read_cube(path)
    assert np.array_equal(back, cube) and np.array_equal(wl, WL)
    with pytest.raises(InvalidCubeError, match=r"e\.hdr.*wavelengths"):
        write_cube(tmp_path / "e.hdr", cube)


# -- errors -------------------------------------------------------------------
def test_missing_data_file(tmp_path):
    hdr = write_envi(tmp_path / "m.hdr", _raw(), WL)
    find_data_file(hdr).unlink()
    with pytest.raises(FileFormatError, match=r"m\.hdr.*no data file.*m\.raw") as info:
        read_envi(hdr)
    assert info.value.path == hdr


def test_size_mismatch_names_data_file(tmp_path):
    hdr = write_envi(tmp_path / "s.hdr", _raw(), WL, data_suffix=".raw")
    raw = tmp_path / "s.raw"
    raw.write_bytes(raw.read_bytes()[:-2])
    with pytest.raises(FileFormatError, match=r"s\.raw.*s\.hdr says 6 lines x 5 samples x 8 bands") as info:
        read_envi(hdr)
    assert str(H * W * C * 2 - 2) in str(info.value)


def test_band_wavelength_count_mismatch(tmp_path):
    (tmp_path / "w.raw").write_bytes(_raw().tobytes())
    (tmp_path / "w.hdr").write_text(_header(extra="wavelength = { 500, 600 }\n"))
    with pytest.raises(FileFormatError, match=r"w\.hdr.*8 bands but 2 wavelengths"):
        read_envi(tmp_path / "w.hdr")


def test_header_without_wavelengths(tmp_path):
    (tmp_path / "n.raw").write_bytes(_raw().tobytes())
    (tmp_path / "n.hdr").write_text(_header())
    with pytest.raises(FileFormatError, match=r"n\.hdr.*no 'wavelength'"):
        read_envi(tmp_path / "n.hdr")
    cube, wl = read_envi(tmp_path / "n.hdr", require_wavelengths=False)
    assert wl is None and cube.shape == (H, W, C)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not a header\n", "not a readable ENVI header"),
        ("ENVI\nsamples = 5\nlines = 6\n", "not a readable ENVI header"),
        (_header(extra="wavelength units = parsecs\nwavelength = {" + ",".join("1" * C) + "}\n"), "parsecs"),
        (_header(dtype_code=99), "unsupported ENVI 'data type'"),
    ],
)
def test_bad_headers(tmp_path, text, expected):
    (tmp_path / "bad.raw").write_bytes(_raw().tobytes())
    (tmp_path / "bad.hdr").write_text(text)
    with pytest.raises(FileFormatError, match=expected) as info:
        read_envi(tmp_path / "bad.hdr")
    assert "bad.hdr" in str(info.value)


def test_wrong_extension_and_missing_header(tmp_path):
    with pytest.raises(FileFormatError, match=r"cube\.txt"):
        read_envi(tmp_path / "cube.txt")
    with pytest.raises(FileFormatError, match=r"gone\.hdr.*no such"):
        read_envi(tmp_path / "gone.hdr")
    with pytest.raises(FileFormatError, match=r"cube\.txt"):
        write_envi(tmp_path / "cube.txt", _raw(), WL)


def test_unsupported_dtype_on_write(tmp_path):
    with pytest.raises(InvalidCubeError, match=r"f16\.hdr.*float16"):
        write_envi(tmp_path / "f16.hdr", np.zeros((2, 2, 2), np.float16), None)
    assert list(tmp_path.iterdir()) == []


# -- Specim capture folders -----------------------------------------------------
def test_specim_round_trip(tmp_path):
    cube, dark, white = _raw(1), _raw(2, lines=3), _raw(3, lines=4)
    paths = write_specim_capture(tmp_path / "scan1", "scan1", cube, dark, white, WL)
    capture = tmp_path / "scan1" / "capture"
    assert sorted(p.name for p in capture.iterdir()) == [
        "DARKREF_scan1.hdr",
        "DARKREF_scan1.raw",
        "WHITEREF_scan1.hdr",
        "WHITEREF_scan1.raw",
        "scan1.hdr",
        "scan1.raw",
    ]
    assert paths == specim_paths(tmp_path / "scan1", "scan1")
    got = read_specim_capture(tmp_path / "scan1")
    assert got.name == "scan1"
    assert got.cube.tobytes() == cube.tobytes()
    assert got.dark.tobytes() == dark.tobytes() and got.dark.shape == (3, W, C)
    assert got.white.tobytes() == white.tobytes()
    np.testing.assert_array_equal(got.wavelengths_nm, WL)
    assert got.paths["dark"] == capture / "DARKREF_scan1.hdr"
    assert "interleave = bil" in (capture / "scan1.hdr").read_text()


@pytest.mark.parametrize("companion", ["DARKREF_s.hdr", "WHITEREF_s.hdr", "DARKREF_s.raw", "s.raw"])
def test_specim_missing_companion(tmp_path, companion):
    write_specim_capture(tmp_path, "s", _raw(), _raw(lines=2), _raw(lines=2), WL)
    (tmp_path / "capture" / companion).unlink()
    stem = companion.split(".")[0]
    with pytest.raises(FileFormatError, match=stem + r"\.hdr"):
        read_specim_capture(tmp_path, name="s")


def test_specim_reference_shape_mismatch(tmp_path):
    write_specim_capture(tmp_path, "s", _raw(), _raw(lines=2), _raw(lines=2), WL)
    write_envi(tmp_path / "capture" / "WHITEREF_s.hdr", np.zeros((2, W + 1, C), np.uint16), WL, data_suffix=".raw")
    with pytest.raises(FileFormatError, match=r"WHITEREF_s\.hdr.*6 samples"):
        read_specim_capture(tmp_path)


def test_specim_reference_wavelength_mismatch(tmp_path):
    write_specim_capture(tmp_path, "s", _raw(), _raw(lines=2), _raw(lines=2), WL)
    write_envi(tmp_path / "capture" / "DARKREF_s.hdr", _raw(lines=2), WL + 10, data_suffix=".raw")
    with pytest.raises(FileFormatError, match=r"DARKREF_s\.hdr.*wavelengths differ"):
        read_specim_capture(tmp_path)


def test_specim_folder_without_single_scene(tmp_path):
    with pytest.raises(FileFormatError, match="no capture/ folder"):
        read_specim_capture(tmp_path)
    write_specim_capture(tmp_path, "a", _raw(), _raw(lines=2), _raw(lines=2), WL)
    write_specim_capture(tmp_path, "b", _raw(), _raw(lines=2), _raw(lines=2), WL)
    with pytest.raises(FileFormatError, match="found a, b"):
        read_specim_capture(tmp_path)
    assert read_specim_capture(tmp_path, name="b").name == "b"


def test_specim_writer_rejects_mismatched_reference(tmp_path):
    with pytest.raises(InvalidCubeError, match=r"DARKREF_s\.hdr"):
        write_specim_capture(tmp_path, "s", _raw(), np.zeros((2, W, C + 1), np.uint16), _raw(lines=2), WL)


def test_write_refuses_when_another_data_file_would_shadow(tmp_path):
    write_envi(tmp_path / "x.hdr", _raw(), WL, data_suffix=".raw")
    with pytest.raises(FileFormatError, match=r"x\.hdr.*x\.raw already lies beside it"):
        write_envi(tmp_path / "x.hdr", _raw(1), WL, data_suffix=".img")
    np.testing.assert_array_equal(read_envi(tmp_path / "x.hdr")[0], _raw())
    write_envi(tmp_path / "x.hdr", _raw(1), WL, data_suffix=".raw")  # same suffix: replaces
    np.testing.assert_array_equal(read_envi(tmp_path / "x.hdr")[0], _raw(1))
