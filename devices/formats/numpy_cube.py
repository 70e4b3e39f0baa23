"""NumPy cubes: ``.npy`` (the (H, W, C) array alone) and ``.npz`` (keys ``cube``, ``wavelengths_nm``).

Files are read with ``allow_pickle=False`` and written atomically. A valid cube is 3-D,
integer or float, finite where float; ``wavelengths_nm`` is (C,) finite, one per band.
Wavelengths are returned as float32 nm.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from xenoedge.atomic import atomic_write
from xenoedge.errors import FileFormatError, InvalidCubeError

NPY_SUFFIX = ".npy"
NPZ_SUFFIX = ".npz"
NPZ_KEYS = ("cube", "wavelengths_nm")


def cube_problem(cube: np.ndarray) -> str | None:
    """What is wrong with ``cube`` as an (H, W, C) cube, or None if nothing."""
    if cube.ndim != 3:
        return f"a cube is (H, W, C), got {cube.ndim}-D shape {cube.shape}"
    if 0 in cube.shape:
        return f"cube shape {cube.shape} is empty"
    if cube.dtype.kind not in "uif":
        return f"a cube holds integer or float numbers, got dtype {cube.dtype}"
    if cube.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(cube)))
        if bad:
            return f"cube has {bad} non-finite (NaN/inf) values"
    return None


def wavelengths_problem(wavelengths_nm: np.ndarray, n_bands: int) -> str | None:
    """What is wrong with ``wavelengths_nm`` for a cube of ``n_bands`` bands, or None."""
    if wavelengths_nm.ndim != 1:
        return f"wavelengths_nm must be 1-D (C,), got shape {wavelengths_nm.shape}"
    if wavelengths_nm.dtype.kind not in "uif":
        return f"wavelengths_nm must be numbers, got dtype {wavelengths_nm.dtype}"
    if wavelengths_nm.size != n_bands:
        return f"cube has {n_bands} bands but {wavelengths_nm.size} wavelengths"
    if not np.all(np.isfinite(wavelengths_nm)):
        return "wavelengths_nm has non-finite values"
    return None


def _check_suffix(path: Path, suffix: str) -> None:
    if path.suffix.lower() != suffix:
        raise FileFormatError(path, f"expected a {suffix} file name")


def _load(path: Path) -> object:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileFormatError(path, "no such file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise FileFormatError(path, f"not a readable NumPy file ({e})") from None


def _check(path: Path, problem: str | None, *, reading: bool) -> None:
    """Raise for ``problem``: FileFormatError for a file read, InvalidCubeError for an array to write."""
    if problem is None:
        return
    if reading:
        raise FileFormatError(path, problem)
    raise InvalidCubeError(f"{path}: {problem}")


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read an (H, W, C) cube from ``.npy`` in its stored dtype (native byte order)."""
    path = Path(path)
    _check_suffix(path, NPY_SUFFIX)
    data = _load(path)
    if not isinstance(data, np.ndarray):
        raise FileFormatError(path, "not a .npy array file")
    _check(path, cube_problem(data), reading=True)
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def write_npy(path: str | os.PathLike, cube: np.ndarray) -> Path:
    """Write an (H, W, C) cube to ``.npy`` atomically (validated first: InvalidCubeError)."""
    path = Path(path)
    _check_suffix(path, NPY_SUFFIX)
    cube = np.asarray(cube)
    _check(path, cube_problem(cube), reading=False)
    return atomic_write(path, lambda f: np.save(f, cube, allow_pickle=False))


def read_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``.npz``: ((H, W, C) cube in its stored dtype, (C,) float32 wavelengths in nm)."""
    path = Path(path)
    _check_suffix(path, NPZ_SUFFIX)
    archive = _load(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise FileFormatError(path, "not a .npz archive")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            held = ", ".join(archive.files) or "nothing"
            raise FileFormatError(path, f"missing key(s) {', '.join(missing)}; it holds: {held}")
        try:
            cube, wavelengths = archive["cube"], archive["wavelengths_nm"]
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise FileFormatError(path, f"corrupt array inside ({e})") from None
    _check(path, cube_problem(cube), reading=True)
    _check(path, wavelengths_problem(wavelengths, cube.shape[2]), reading=True)
    return cube.astype(cube.dtype.newbyteorder("="), copy=False), wavelengths.astype(np.float32)


def write_npz(path: str | os.PathLike, cube: np.ndarray, wavelengths_nm: np.ndarray) -> Path:
    """Write ``.npz`` with keys ``cube`` (H, W, C) and ``wavelengths_nm`` (C,), atomically."""
    path = Path(path)
    _check_suffix(path, NPZ_SUFFIX)
    cube, wavelengths = np.asarray(cube), np.asarray(wavelengths_nm)
    _check(path, cube_problem(cube), reading=False)
    _check(path, wavelengths_problem(wavelengths, cube.shape[2]), reading=False)
    return atomic_write(path, lambda f: np.savez(f, cube=cube, wavelengths_nm=wavelengths))
