"""Tivita SpecCube / DarkPattern: byte layout, orientation, round trips, errors."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
from xenoedge.devices.formats import read_cube, write_cube
from xenoedge.devices.formats.tivita import (
    read_dark_pattern,
    read_speccube,
    tivita_wavelengths,
    write_dark_pattern,
    write_speccube,
)

from xenoedge.errors import FileFormatError, InvalidCubeError
from xenoedge.sensors import get_sensor

H, W, C = 12, 16, 100


def _write_by_hand(path, file_shape, values_flat) -> None:
    """A SpecCube built with struct: 3 big-endian int32, then big-endian float32."""
    body = struct.pack(f">{len(values_flat)}f", *values_flat)
    path.write_bytes(struct.pack(">3i", *file_shape) + body)


def test_orientation_from_hand_built_file(tmp_path):
    # File shape (S0, S1, S2) = (W, H, C); cube[j, i, k] == file[i, S1 - 1 - j, k].
    s0, s1, s2 = 4, 3, 2
    values = [float(v) for v in range(s0 * s1 * s2)]  # file[i, m, k] = (i*s1 + m)*s2 + k
    path = tmp_path / "x_SpecCube.dat"
    _write_by_hand(path, (s0, s1, s2), values)
    cube = read_speccube(path)
    assert cube.shape == (s1, s0, s2)
    assert cube.dtype == np.float32
    for i in range(s0):
        for m in range(s1):
            for k in range(s2):
                assert cube[s1 - 1 - m, i, k] == (i * s1 + m) * s2 + k
    # First value in the file lands at the bottom-left pixel, band 0.
    assert cube[s1 - 1, 0, 0] == 0.0


def test_written_bytes_match_layout(tmp_path):
    cube = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    path = write_speccube(tmp_path / "y_SpecCube.dat", cube)
    raw = path.read_bytes()
    assert struct.unpack(">3i", raw[:12]) == (4, 3, 2)  # (W, H, C)
    stored = np.frombuffer(raw[12:], dtype=">f4").reshape(4, 3, 2)
    np.testing.assert_array_equal(stored, np.flip(np.swapaxes(cube, 0, 1), axis=1))


def test_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.random((H, W, C), dtype=np.float32)
    cube[0, 0, :3] = [np.float32(1e-38), np.float32(-0.0), np.float32(3.4e38)]
    path = write_speccube(tmp_path / "scan_SpecCube.dat", cube)
    back = read_speccube(path)
    assert back.dtype == np.float32 and back.shape == (H, W, C)
    assert back.tobytes() == cube.tobytes()
    assert path.stat().st_size == 12 + H * W * C * 4


def test_read_cube_dispatch_gives_tivita_wavelengths(tmp_path):
    cube = np.zeros((H, W, C), dtype=np.float32)
    path = write_cube(tmp_path / "a_SpecCube.dat", cube, get_sensor("tivita").wavelengths())
    back, wl = read_cube(path)
    np.testing.assert_array_equal(wl, get_sensor("tivita").wavelengths())
    assert back.shape == (H, W, C)


def test_write_cube_rejects_foreign_wavelengths(tmp_path):
    cube = np.zeros((H, W, C), dtype=np.float32)
    path = tmp_path / "a_SpecCube.dat"
    with pytest.raises(InvalidCubeError, match=r"a_SpecCube\.dat"):
        write_cube(path, cube, tivita_wavelengths() + 5)
    assert not path.exists()


def test_read_cube_rejects_band_count_without_tivita_wavelengths(tmp_path):
    path = write_speccube(tmp_path / "b_SpecCube.dat", np.zeros((2, 3, 7), dtype=np.float32))
    assert read_speccube(path).shape == (2, 3, 7)  # the plain reader accepts any shape
    with pytest.raises(FileFormatError, match=r"b_SpecCube\.dat.*7 bands"):
        read_cube(path)


def test_dark_pattern_layout_and_round_trip(tmp_path):
    dark = np.random.default_rng(1).normal(60, 2, (H, C))
    path = tmp_path / "DarkPattern.dpic"
    path.write_bytes(struct.pack(">2i", H, C) + dark.astype(">f8").tobytes())
    back = read_dark_pattern(path)
    assert back.dtype == np.float64 and back.shape == (H, C)
    assert back.tobytes() == dark.tobytes()
    out = write_dark_pattern(tmp_path / "copy.dpic", back)
    assert out.read_bytes() == path.read_bytes()


# -- errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("t_SpecCube.dat", b"\x00\x00", "truncated.*12-byte"),
        ("t_SpecCube.dat", struct.pack(">3i", 2, 2, 2) + b"\x00" * 30, "not a whole number"),
        (
            "t_SpecCube.dat",
            struct.pack(">3i", 640, 480, 100) + b"\x00" * 4 * 1234,
            r"\(640, 480, 100\) = 30720000 values but the file holds 1234",
        ),
        ("t_SpecCube.dat", struct.pack(">3i", 2, -2, 2), "zero or negative"),
        ("t_SpecCube.dat", struct.pack(">3i", 0, 2, 2), "zero or negative"),
        (
            "DarkPattern.dpic",
            struct.pack(">2i", 4, 100) + b"\x00" * 8 * 10,
            r"\(4, 100\) = 400 values but the file holds 10",
        ),
        ("DarkPattern.dpic", b"\x00\x00\x00\x04", "truncated.*8-byte"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    reader = read_speccube if name.endswith(".dat") else read_dark_pattern
    with pytest.raises(FileFormatError, match=expected) as info:
        reader(path)
    assert name in str(info.value)
    assert info.value.path == path


@pytest.mark.parametrize("name", ["cube.dat", "scan_SpecCube.bin", "scan_SpecCube.dat.gz"])
def test_speccube_wrong_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(struct.pack(">3i", 1, 1, 1) + b"\x00" * 4)
    with pytest.raises(FileFormatError, match=re.escape(name)):
        read_speccube(path)
    with pytest.raises(FileFormatError, match=re.escape(name)):
        write_speccube(path, np.zeros((1, 1, 1), np.float32))


def test_dark_pattern_wrong_extension(tmp_path):
    path = tmp_path / "DarkPattern.dat"
    path.write_bytes(struct.pack(">2i", 1, 1) + b"\x00" * 8)
    with pytest.raises(FileFormatError, match=r"DarkPattern\.dat"):
        read_dark_pattern(path)
    with pytest.raises(FileFormatError, match=r"DarkPattern\.dat"):
        write_dark_pattern(path, np.zeros((1, 1)))


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope_SpecCube\.dat.*no such file"):
        read_speccube(tmp_path / "nope_SpecCube.dat")


def test_write_rejects_non_cube(tmp_path):
    with pytest.raises(InvalidCubeError, match=r"w_SpecCube\.dat"):
        write_speccube(tmp_path / "w_SpecCube.dat", np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidCubeError, match=r"w_SpecCube\.dat"):
        write_speccube(tmp_path / "w_SpecCube.dat", np.zeros((2, 3, 4), np.uint16))


def test_failed_write_keeps_old_file(tmp_path):
    path = write_speccube(tmp_path / "k_SpecCube.dat", np.ones((2, 2, 2), np.float32))
    before = path.read_bytes()
    with pytest.raises(InvalidCubeError):
        write_speccube(path, np.ones((2, 2), np.float32))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k_SpecCube.dat"]  # no temp files left
