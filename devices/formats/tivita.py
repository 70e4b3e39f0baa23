"""Tivita files: ``*_SpecCube.dat`` reflectance cubes and ``DarkPattern.dpic`` dark patterns.

``*_SpecCube.dat``: 3 big-endian int32 (shape ``(S0, S1, S2)``, on a real camera
``(640, 480, 100)``), then ``S0*S1*S2`` big-endian float32 values in C order. The cube
is that array with axis 1 flipped and axes 0 and 1 swapped:
``cube[j, i, k] == file[i, S1 - 1 - j, k]``, shape ``(S1, S0, S2)`` = (480, 640, 100).

``DarkPattern.dpic``: 2 big-endian int32 (shape ``(L, C)``, on a real camera
``(480, 100)``), then ``L*C`` big-endian float64 values: one dark value per line and band.

Any positive shape in the header is accepted (tests use small cubes). The files carry
no wavelengths; the Tivita's are ``get_sensor("tivita").wavelengths()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xenoedge.atomic import atomic_write
from xenoedge.errors import FileFormatError, InvalidCubeError
from xenoedge.sensors import get_sensor

SPECCUBE_SUFFIX = "_SpecCube.dat"
DARK_PATTERN_SUFFIX = ".dpic"

_SHAPE_DTYPE = np.dtype(">i4")
_CUBE_DTYPE = np.dtype(">f4")
_DARK_DTYPE = np.dtype(">f8")


def tivita_wavelengths() -> np.ndarray:
    """(100,) float32 band centres in nm of the Tivita (500-1000 nm)."""
    return get_sensor("tivita").wavelengths()


def _check_suffix(path: Path, suffix: str) -> None:
    if not path.name.lower().endswith(suffix.lower()):
        raise FileFormatError(path, f"not a Tivita file: its name must end with {suffix!r}")


def _read_stored_array(path: Path, ndim: int, value_dtype: np.dtype) -> np.ndarray:
    """The array in a Tivita file (shape header + values) as stored: big-endian, file order."""
    header_bytes = ndim * _SHAPE_DTYPE.itemsize
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(header_bytes)
    except FileNotFoundError:
        raise FileFormatError(path, "no such file") from None
    except OSError as e:
        raise FileFormatError(path, f"cannot be read ({e.strerror or e})") from None
    if len(head) < header_bytes:
        raise FileFormatError(path, f"truncated: {size} bytes, fewer than the {header_bytes}-byte shape header")
    shape = tuple(int(v) for v in np.frombuffer(head, dtype=_SHAPE_DTYPE))
    if any(d <= 0 for d in shape):
        raise FileFormatError(path, f"header shape {shape} has a zero or negative dimension")
    n_expected = int(np.prod(shape, dtype=np.int64))
    payload = size - header_bytes
    if payload % value_dtype.itemsize:
        raise FileFormatError(
            path,
            f"truncated: {payload} bytes after the header is not a whole number of {value_dtype.itemsize}-byte values",
        )
    n_found = payload // value_dtype.itemsize
    if n_found != n_expected:
        raise FileFormatError(path, f"header says {shape} = {n_expected} values but the file holds {n_found}")
    return np.fromfile(path, dtype=value_dtype, count=n_expected, offset=header_bytes).reshape(shape)


def read_speccube(path: str | os.PathLike) -> np.ndarray:
    """Read a ``*_SpecCube.dat``: (H, W, C) float32 reflectance, (480, 640, 100) on a real camera."""
    path = Path(path)
    _check_suffix(path, SPECCUBE_SUFFIX)
    stored = _read_stored_array(path, 3, _CUBE_DTYPE)
    view = np.swapaxes(np.flip(stored, axis=1), 0, 1)
    cube = np.empty(view.shape, dtype=np.float32)
    np.copyto(cube, view)  # one pass: reorder and byte-swap to native
    return cube


def write_speccube(path: str | os.PathLike, cube: np.ndarray) -> Path:
    """Write (H, W, C) reflectance as a ``*_SpecCube.dat`` (exact inverse of ``read_speccube``).

    Values are stored as big-endian float32; the header holds ``(W, H, C)``. Atomic.
    """
    path = Path(path)
    _check_suffix(path, SPECCUBE_SUFFIX)
    cube = np.asarray(cube)
    if cube.ndim != 3 or 0 in cube.shape:
        raise InvalidCubeError(f"{path}: a SpecCube needs a non-empty (H, W, C) cube, got shape {cube.shape}")
    if cube.dtype.kind != "f":
        raise InvalidCubeError(f"{path}: a SpecCube holds float reflectance, got dtype {cube.dtype}")
    stored = np.flip(np.swapaxes(cube, 0, 1), axis=1)
    header = np.asarray(stored.shape, dtype=_SHAPE_DTYPE).tobytes()
    body = np.ascontiguousarray(stored, dtype=_CUBE_DTYPE).tobytes()
    return atomic_write(path, lambda f: (f.write(header), f.write(body)))


def read_dark_pattern(path: str | os.PathLike) -> np.ndarray:
    """Read a ``DarkPattern.dpic``: (L, C) float64 dark counts, one per line and band, as stored."""
    path = Path(path)
    _check_suffix(path, DARK_PATTERN_SUFFIX)
    return _read_stored_array(path, 2, _DARK_DTYPE).astype(np.float64)


def write_dark_pattern(path: str | os.PathLike, dark: np.ndarray) -> Path:
    """Write (L, C) dark counts as a ``.dpic`` (big-endian float64, no reorientation). Atomic."""
    path = Path(path)
    _check_suffix(path, DARK_PATTERN_SUFFIX)
    dark = np.asarray(dark)
    if dark.ndim != 2 or 0 in dark.shape:
        raise InvalidCubeError(f"{path}: a dark pattern is a non-empty (L, C) array, got shape {dark.shape}")
    if dark.dtype.kind not in "uif":
        raise InvalidCubeError(f"{path}: a dark pattern holds numbers, got dtype {dark.dtype}")
    header = np.asarray(dark.shape, dtype=_SHAPE_DTYPE).tobytes()
    body = np.ascontiguousarray(dark, dtype=_DARK_DTYPE).tobytes()
    return atomic_write(path, lambda f: (f.write(header), f.write(body)))
