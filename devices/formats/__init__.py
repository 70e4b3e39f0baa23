"""Spectral file formats: one table (``CUBE_FORMATS``) maps a file suffix to its reader and writer.

>>> [f.suffix for f in CUBE_FORMATS]
['_SpecCube.dat', '.hdr', '.npy', '.npz']

``read_cube(path)`` returns ``(cube, wavelengths_nm)``: the (H, W, C) cube in its stored
dtype (float32 reflectance or integer raw counts) and (C,) float32 band centres in nm,
or None for a ``.npy`` file, which stores no wavelengths. ``write_cube`` is the inverse.
Byte layouts and errors: ``docs/formats.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xenoedge.devices.formats.envi import (
    SpecimCapture,
    read_envi,
    read_specim_capture,
    write_envi,
    write_specim_capture,
)
from xenoedge.devices.formats.label_png import colorize, read_label_png, write_label_png, write_rgb_png
from xenoedge.devices.formats.numpy_cube import read_npy, read_npz, write_npy, write_npz
from xenoedge.devices.formats.tivita import (
    read_dark_pattern,
    read_speccube,
    tivita_wavelengths,
    write_dark_pattern,
    write_speccube,
)

from xenoedge.errors import FileFormatError, InvalidCubeError

CubeReader = Callable[[Path], tuple[np.ndarray, "np.ndarray | None"]]
CubeWriter = Callable[[Path, np.ndarray, "np.ndarray | None"], Path]


@dataclass(frozen=True)
class CubeFormat:
    """One cube file format: how its files are named, read and written."""

    name: str
    suffix: str
    description: str
    stores_wavelengths: bool
    read: CubeReader
    write: CubeWriter

    def matches(self, path: str | os.PathLike) -> bool:
        """True if ``path``'s file name ends with this format's suffix (case-insensitive)."""
        return Path(path).name.lower().endswith(self.suffix.lower())


def _read_tivita(path: Path) -> tuple[np.ndarray, np.ndarray]:
    cube, wavelengths = read_speccube(path), tivita_wavelengths()
    if cube.shape[2] != wavelengths.size:
        raise FileFormatError(
            path, f"cube has {cube.shape[2]} bands but the Tivita has {wavelengths.size} (500-1000 nm)"
        )
    return cube, wavelengths


def _write_tivita(path: Path, cube: np.ndarray, wavelengths_nm: np.ndarray | None) -> Path:
    if wavelengths_nm is not None:
        wl, tivita = np.asarray(wavelengths_nm, dtype=np.float64).ravel(), tivita_wavelengths()
        if wl.shape != tivita.shape or not np.allclose(wl, tivita, atol=1e-3):
            raise InvalidCubeError(
                f"{path}: a SpecCube stores no wavelengths and implies the Tivita's "
                f"{tivita.size} bands 500-1000 nm; these wavelengths differ"
            )
    return write_speccube(path, cube)


def _read_npy(path: Path) -> tuple[np.ndarray, None]:
    return read_npy(path), None


def _write_npy(path: Path, cube: np.ndarray, wavelengths_nm: np.ndarray | None) -> Path:
    if wavelengths_nm is not None:
        raise InvalidCubeError(f"{path}: a .npy file stores no wavelengths; write a .npz to keep them")
    return write_npy(path, cube)


def _needs_wavelengths(writer: Callable[[Path, np.ndarray, np.ndarray], Path], suffix: str) -> CubeWriter:
    def write(path: Path, cube: np.ndarray, wavelengths_nm: np.ndarray | None) -> Path:
        if wavelengths_nm is None:
            raise InvalidCubeError(f"{path}: a {suffix} file stores wavelengths; pass wavelengths_nm")
        return writer(path, cube, wavelengths_nm)

    return write


#: Every cube format, the one place that names them (read_cube, write_cube, replay and docs use it).
CUBE_FORMATS: tuple[CubeFormat, ...] = (
    CubeFormat(
        name="tivita",
        suffix="_SpecCube.dat",
        description="Tivita reflectance cube",
        stores_wavelengths=False,
        read=_read_tivita,
        write=_write_tivita,
    ),
    CubeFormat(
        name="envi",
        suffix=".hdr",
        description="ENVI header + data file",
        stores_wavelengths=True,
        read=read_envi,
        write=_needs_wavelengths(write_envi, ".hdr"),
    ),
    CubeFormat(
        name="npy",
        suffix=".npy",
        description="NumPy array, no wavelengths",
        stores_wavelengths=False,
        read=_read_npy,
        write=_write_npy,
    ),
    CubeFormat(
        name="npz",
        suffix=".npz",
        description="NumPy archive: cube + wavelengths_nm",
        stores_wavelengths=True,
        read=read_npz,
        write=_needs_wavelengths(write_npz, ".npz"),
    ),
)


def supported_suffixes() -> str:
    """Human-readable list of the supported cube suffixes, for messages."""
    return ", ".join(f"{f.suffix!r} ({f.description})" for f in CUBE_FORMATS)


def find_format(path: str | os.PathLike) -> CubeFormat | None:
    """The format whose suffix ``path`` ends with, or None."""
    for fmt in sorted(CUBE_FORMATS, key=lambda f: -len(f.suffix)):
        if fmt.matches(path):
            return fmt
    return None


def cube_format(path: str | os.PathLike) -> CubeFormat:
    """The format of ``path`` by suffix; ``FileFormatError`` listing the supported ones otherwise."""
    fmt = find_format(path)
    if fmt is None:
        raise FileFormatError(path, f"unsupported cube file; supported: {supported_suffixes()}")
    return fmt


def read_cube(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read any supported cube: ((H, W, C) stored dtype, (C,) float32 nm or None for ``.npy``)."""
    path = Path(path)
    return cube_format(path).read(path)


def write_cube(path: str | os.PathLike, cube: np.ndarray, wavelengths_nm: np.ndarray | None = None) -> Path:
    """Write an (H, W, C) cube in the format its suffix names (atomic per file); returns the path.

    ``wavelengths_nm`` (C,) is required for ``.hdr``/``.npz``, must be None for ``.npy``
    and, for a SpecCube, None or the Tivita's own.
    """
    path = Path(path)
    return cube_format(path).write(path, np.asarray(cube), wavelengths_nm)


__all__ = [
    "CUBE_FORMATS",
    "CubeFormat",
    "SpecimCapture",
    "colorize",
    "cube_format",
    "find_format",
    "read_cube",
    "read_dark_pattern",
    "read_envi",
    "read_label_png",
    "read_npy",
    "read_npz",
    "read_speccube",
    "read_specim_capture",
    "supported_suffixes",
    "tivita_wavelengths",
    "write_cube",
    "write_dark_pattern",
    "write_envi",
    "write_label_png",
    "write_npy",
    "write_npz",
    "write_rgb_png",
    "write_speccube",
    "write_specim_capture",
]
