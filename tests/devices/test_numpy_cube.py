"""NumPy cubes (.npy / .npz): round trips, validation, atomic writes, dispatch."""

from __future__ import annotations

import numpy as np
import pytest
from xenoedge.devices.formats import CUBE_FORMATS, read_cube, write_cube
from xenoedge.devices.formats.numpy_cube import read_npy, read_npz, write_npy, write_npz

from xenoedge.atomic import atomic_write
from xenoedge.errors import FileFormatError, InvalidCubeError

WL = np.linspace(600.0, 975.0, 5).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64, ">f4"])
def test_npy_round_trip(tmp_path, dtype):
    cube = (np.random.default_rng(0).random((4, 3, 5)) * 1000).astype(dtype)
    back = read_npy(write_npy(tmp_path / "c.npy", cube))
    assert back.dtype.isnative and back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, cube)
    if np.dtype(dtype).isnative:
        assert back.tobytes() == cube.tobytes()


def test_npz_round_trip(tmp_path):
    cube = np.random.default_rng(1).random((4, 3, 5), dtype=np.float32)
    back, wl = read_npz(write_npz(tmp_path / "c.npz", cube, WL))
    assert back.tobytes() == cube.tobytes()
    assert wl.dtype == np.float32 and wl.tobytes() == WL.tobytes()
    with np.load(tmp_path / "c.npz") as z:
        assert sorted(z.files) == ["cube", "wavelengths_nm"]


def test_dispatch_npy_and_npz(tmp_path):
    cube = np.ones((2, 2, 5), np.uint16)
    back, wl = read_cube(write_cube(tmp_path / "a.npy", cube))
    assert wl is None and np.array_equal(back, cube)
    back, wl = read_cube(write_cube(tmp_path / "a.npz", cube, WL))
    assert np.array_equal(wl, WL)
    with pytest.raises(InvalidCubeError, match=r"b\.npy.*write a \.npz"):
        write_cube(tmp_path / "b.npy", cube, WL)
    with pytest.raises(InvalidCubeError, match=r"b\.npz.*pass wavelengths_nm"):
        write_cube(tmp_path / "b.npz", cube)


def test_unknown_suffix_lists_supported(tmp_path):
    for call in (
        lambda: read_cube(tmp_path / "x.tif"),
        lambda: write_cube(tmp_path / "x.tif", np.ones((1, 1, 1))),
    ):
        with pytest.raises(FileFormatError, match=r"x\.tif") as info:
            call()
        for fmt in CUBE_FORMATS:
            assert repr(fmt.suffix) in str(info.value)


# -- validation ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.ones((3, 4), np.float32), "2-D"),
        (np.ones((3, 0, 2), np.float32), "empty"),
        (np.array([[[np.nan, 1.0]]], np.float32), "1 non-finite"),
        (np.array([[[np.inf, 1.0]]], np.float64), "non-finite"),
        (np.ones((1, 1, 1), np.complex64), "complex64"),
    ],
)
def test_bad_arrays_rejected_on_write_and_read(tmp_path, array, expected):
    path = tmp_path / "bad.npy"
    with pytest.raises(InvalidCubeError, match=expected) as info:
        write_npy(path, array)
    assert "bad.npy" in str(info.value)
    assert not path.exists()
    np.save(path, array)  # a file written by someone else
    with pytest.raises(FileFormatError, match=expected) as info:
        read_npy(path)
    assert info.value.path == path


def test_npz_wavelength_count(tmp_path):
    cube = np.ones((2, 2, 5), np.float32)
    with pytest.raises(InvalidCubeError, match=r"w\.npz.*5 bands but 4 wavelengths"):
        write_npz(tmp_path / "w.npz", cube, WL[:4])
    np.savez(tmp_path / "w.npz", cube=cube, wavelengths_nm=WL[:4])
    with pytest.raises(FileFormatError, match=r"w\.npz.*5 bands but 4 wavelengths"):
        read_npz(tmp_path / "w.npz")
    np.savez(tmp_path / "w.npz", cube=cube, wavelengths_nm=np.full(5, np.nan))
    with pytest.raises(FileFormatError, match=r"w\.npz.*non-finite"):
        read_npz(tmp_path / "w.npz")


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "k.npz", data=np.ones((2, 2, 5)))
    with pytest.raises(FileFormatError, match=r"k\.npz.*missing key\(s\) cube, wavelengths_nm; it holds: data"):
        read_npz(tmp_path / "k.npz")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("t.npy", b"\x93NUMPY garbage", "not a readable NumPy file"),
        ("t.npz", b"PK\x03\x04 truncated zip", "not a readable NumPy file"),
        ("t.npy", None, "no such file"),
    ],
)
def test_corrupt_or_missing_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    reader = read_npy if name.endswith(".npy") else read_npz
    with pytest.raises(FileFormatError, match=expected) as info:
        reader(path)
    assert name in str(info.value)


def test_wrong_kind_of_numpy_file(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((1, 1, 1)))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    with pytest.raises(FileFormatError, match=r"a\.npz.*not a \.npz archive"):
        read_npz(tmp_path / "a.npz")
    with pytest.raises(FileFormatError, match=r"a\.npz.*expected a \.npy"):
        read_npy(tmp_path / "a.npz")


def test_pickled_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"o\.npy"):
        read_npy(tmp_path / "o.npy")


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    path = write_npy(tmp_path / "keep.npy", np.ones((1, 1, 2), np.float32))
    before = path.read_bytes()

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]
