"""ENVI cubes (``NAME.hdr`` + binary data file) and Specim-style capture folders.

Reading and writing go through the ``spectral`` package (``spectral.envi``). A cube is
(H, W, C) = (lines, samples, bands) in any ENVI integer or float dtype (uint16 raw counts,
float32 reflectance ...), returned in native byte order with the stored values (no
``reflectance scale factor`` applied). Wavelengths come from the header ``wavelength``
field, in nm (``wavelength units`` nanometers; micrometers are converted; absent units
are taken as nm).

Specim capture folder::

    ROOT/capture/NAME.hdr + NAME.raw                  the scene
    ROOT/capture/DARKREF_NAME.hdr + DARKREF_NAME.raw  dark reference (lens capped)
    ROOT/capture/WHITEREF_NAME.hdr + WHITEREF_NAME.raw  white reference (white tile)

The references may have fewer lines than the scene but must match its samples and bands.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from spectral.io import envi as spy_envi

from xenoedge.atomic import replace_synced, temp_path_beside
from xenoedge.errors import FileFormatError, InvalidCubeError

HEADER_SUFFIX = ".hdr"
#: Data-file extensions tried next to ``NAME.hdr``, in order ("" = no extension).
DATA_SUFFIXES: tuple[str, ...] = (".raw", ".img", ".dat", ".bil", ".bip", ".bsq", "")
DARK_PREFIX = "DARKREF_"
WHITE_PREFIX = "WHITEREF_"
CAPTURE_DIR = "capture"

_UNITS_TO_NM: dict[str, float] = {
    "nm": 1.0,
    "nanometers": 1.0,
    "nanometer": 1.0,
    "um": 1000.0,
    "µm": 1000.0,
    "micrometers": 1000.0,
    "micrometer": 1000.0,
    "microns": 1000.0,
}


def _check_header_path(hdr: Path) -> None:
    if hdr.suffix.lower() != HEADER_SUFFIX:
        raise FileFormatError(hdr, f"not an ENVI header: the name must end with {HEADER_SUFFIX!r}")
    if not hdr.is_file():
        raise FileFormatError(hdr, "no such ENVI header")


def _data_candidates(hdr: Path) -> list[Path]:
    """Possible data files of ``hdr`` in lookup order (``DATA_SUFFIXES``, lower then upper case)."""
    base = hdr.with_suffix("")
    names = dict.fromkeys(n for ext in DATA_SUFFIXES for n in (base.name + ext, base.name + ext.upper()))
    return [base.with_name(n) for n in names if base.with_name(n) != hdr]


def find_data_file(hdr: str | os.PathLike) -> Path:
    """The binary data file next to ``NAME.hdr`` (``NAME.raw``, ``NAME.img`` ... see ``DATA_SUFFIXES``)."""
    hdr = Path(hdr)
    base = hdr.with_suffix("")
    for candidate in _data_candidates(hdr):
        if candidate.is_file():
            return candidate
    tried = ", ".join(base.name + ext for ext in DATA_SUFFIXES)
    raise FileFormatError(hdr, f"no data file next to this ENVI header (looked for {tried})")


def _read_header(hdr: Path) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spectral warns about non-lowercase keys
            header = spy_envi.read_envi_header(str(hdr))
            spy_envi.check_compatibility(header)
    except (spy_envi.EnviException, UnicodeDecodeError, ValueError) as e:
        raise FileFormatError(hdr, f"not a readable ENVI header ({' '.join(str(e).split())})") from None
    return header


def _header_int(hdr: Path, header: dict, key: str) -> int:
    try:
        value = int(header[key])
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(hdr, f"header field {key!r} is missing or not an integer") from None
    return value


def _header_dtype(hdr: Path, header: dict) -> np.dtype:
    code = str(header.get("data type", "")).strip()
    if code not in spy_envi.envi_to_dtype:
        known = ", ".join(sorted(spy_envi.envi_to_dtype))
        raise FileFormatError(hdr, f"unsupported ENVI 'data type' {code!r} (known: {known})")
    dtype = np.dtype(spy_envi.envi_to_dtype[code])
    byte_order = _header_int(hdr, header, "byte order")
    return dtype.newbyteorder(">" if byte_order == 1 else "<")


def _wavelengths_nm(hdr: Path, header: dict, n_bands: int) -> np.ndarray | None:
    """(C,) float32 nm from the header, None if it has no ``wavelength`` field."""
    if "wavelength" not in header:
        return None
    values = header["wavelength"]
    if isinstance(values, str):
        values = [values]
    try:
        wl = np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError:
        raise FileFormatError(hdr, "header 'wavelength' holds something that is not a number") from None
    if wl.size != n_bands:
        raise FileFormatError(hdr, f"header has {n_bands} bands but {wl.size} wavelengths")
    units = str(header.get("wavelength units", "nm")).strip().lower()
    if units not in _UNITS_TO_NM:
        raise FileFormatError(
            hdr, f"unsupported 'wavelength units' {units!r} (known: {', '.join(sorted(_UNITS_TO_NM))})"
        )
    return (wl * _UNITS_TO_NM[units]).astype(np.float32)


def _read_envi(hdr: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) native-order cube and (C,) float32 nm wavelengths or None."""
    _check_header_path(hdr)
    header = _read_header(hdr)
    data_path = find_data_file(hdr)
    lines, samples, bands = (_header_int(hdr, header, k) for k in ("lines", "samples", "bands"))
    if min(lines, samples, bands) <= 0:
        raise FileFormatError(hdr, f"header size lines={lines} samples={samples} bands={bands} is empty")
    dtype = _header_dtype(hdr, header)
    offset = _header_int(hdr, header, "header offset") if "header offset" in header else 0
    expected = offset + lines * samples * bands * dtype.itemsize
    actual = data_path.stat().st_size
    if actual != expected:
        raise FileFormatError(
            data_path,
            f"header {hdr.name} says {lines} lines x {samples} samples x {bands} bands of "
            f"{dtype.name} (+{offset} offset) = {expected} bytes, but the file holds {actual} bytes",
        )
    wavelengths = _wavelengths_nm(hdr, header, bands)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN warnings; validation is the caller's job
            img = spy_envi.open(str(hdr), image=str(data_path))
            try:
                loaded = img.load(dtype=img.dtype, scale=False)
            finally:
                with contextlib.suppress(Exception):
                    img.fid.close()
    except (spy_envi.EnviException, OSError, ValueError) as e:
        raise FileFormatError(hdr, f"spectral could not read it ({' '.join(str(e).split())})") from None
    cube = np.asarray(loaded).astype(dtype.newbyteorder("="), order="C")
    return cube, wavelengths


def read_envi(hdr: str | os.PathLike, *, require_wavelengths: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``NAME.hdr`` + its data file: ((H, W, C) cube in the stored dtype, (C,) float32 nm).

    Raises ``FileFormatError`` naming the file for a missing data file, a header/data size
    mismatch, a band/wavelength count mismatch or (with ``require_wavelengths``, the
    default) a header without wavelengths; without it such a header gives None.
    """
    hdr = Path(hdr)
    cube, wavelengths = _read_envi(hdr)
    if wavelengths is None and require_wavelengths:
        raise FileFormatError(hdr, "header has no 'wavelength' field; a cube needs its band centres")
    return cube, wavelengths


def write_envi(
    hdr: str | os.PathLike,
    cube: np.ndarray,
    wavelengths_nm: np.ndarray | None,
    *,
    data_suffix: str = ".img",
    interleave: str = "bip",
) -> Path:
    """Write an (H, W, C) cube as ``NAME.hdr`` + ``NAME<data_suffix>``; returns the header path.

    The dtype is kept (uint16, float32 ...); little-endian; ``wavelength`` in nm.
    Each of the two files is written atomically (temp file, fsync, rename; data first).
    """
    hdr = Path(hdr)
    if hdr.suffix.lower() != HEADER_SUFFIX:
        raise FileFormatError(hdr, f"an ENVI header name must end with {HEADER_SUFFIX!r}")
    cube = np.asarray(cube)
    if cube.ndim != 3 or 0 in cube.shape:
        raise InvalidCubeError(f"{hdr}: an ENVI cube is a non-empty (H, W, C) array, got shape {cube.shape}")
    metadata: dict[str, object] = {}
    if wavelengths_nm is not None:
        wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
        if wl.size != cube.shape[2]:
            raise InvalidCubeError(f"{hdr}: cube has {cube.shape[2]} bands but {wl.size} wavelengths")
        metadata = {"wavelength": [repr(float(v)) for v in wl], "wavelength units": "nm"}
    data_path = hdr.with_name(hdr.stem + data_suffix)
    stale = [p for p in _data_candidates(hdr) if p.is_file() and p.name.lower() != data_path.name.lower()]
    if stale:
        raise FileFormatError(
            hdr,
            f"{stale[0].name} already lies beside it and a reader would take it for the data; "
            f"remove it or write with data_suffix={stale[0].suffix!r}",
        )
    with temp_path_beside(hdr, HEADER_SUFFIX) as tmp_hdr:
        tmp_data = tmp_hdr.with_name(tmp_hdr.stem + data_suffix)
        try:
            spy_envi.save_image(
                str(tmp_hdr),
                cube,
                dtype=cube.dtype,
                ext=data_suffix,
                interleave=interleave,
                byteorder="little",
                metadata=metadata,
                force=True,
            )
        except spy_envi.EnviDataTypeError:
            tmp_data.unlink(missing_ok=True)
            raise InvalidCubeError(f"{hdr}: ENVI cannot store dtype {cube.dtype}") from None
        except BaseException:
            tmp_data.unlink(missing_ok=True)
            raise
        replace_synced(tmp_data, data_path)
        replace_synced(tmp_hdr, hdr)
    return hdr


@dataclass
class SpecimCapture:
    """One Specim-style capture folder, read.

    ``cube`` (H, W, C), ``dark`` (Ld, W, C) and ``white`` (Lw, W, C) in their stored
    dtype (usually uint16 raw counts); ``wavelengths_nm`` (C,) float32;
    ``paths`` maps "cube", "dark", "white" to their ``.hdr`` files.
    """

    cube: np.ndarray
    dark: np.ndarray
    white: np.ndarray
    wavelengths_nm: np.ndarray
    name: str
    paths: dict[str, Path]


def specim_paths(root: str | os.PathLike, name: str) -> dict[str, Path]:
    """The three header paths of capture ``name`` under ``root``: keys "cube", "dark", "white"."""
    capture = Path(root) / CAPTURE_DIR
    return {
        "cube": capture / f"{name}{HEADER_SUFFIX}",
        "dark": capture / f"{DARK_PREFIX}{name}{HEADER_SUFFIX}",
        "white": capture / f"{WHITE_PREFIX}{name}{HEADER_SUFFIX}",
    }


def is_reference_header(path: str | os.PathLike) -> bool:
    """True for ``DARKREF_*.hdr`` / ``WHITEREF_*.hdr`` (references, not scenes)."""
    return Path(path).name.upper().startswith((DARK_PREFIX, WHITE_PREFIX))


def _capture_name(root: Path) -> str:
    capture = root / CAPTURE_DIR
    if not capture.is_dir():
        raise FileFormatError(root, f"not a Specim capture folder: no {CAPTURE_DIR}/ folder inside")
    names = sorted(
        p.stem for p in capture.iterdir() if p.suffix.lower() == HEADER_SUFFIX and not is_reference_header(p)
    )
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise FileFormatError(capture, f"expected exactly one scene header (not DARKREF_/WHITEREF_), found {found}")
    return names[0]


def read_specim_capture(root: str | os.PathLike, *, name: str | None = None) -> SpecimCapture:
    """Read ``ROOT/capture/NAME.hdr`` with its DARKREF_/WHITEREF_ companions.

    ``name`` defaults to the one scene header in ``ROOT/capture``. Raises
    ``FileFormatError`` naming the file for a missing companion or data file, size
    mismatches, and references whose samples/bands or wavelengths differ from the scene.
    """
    root = Path(root)
    name = name if name is not None else _capture_name(root)
    paths = specim_paths(root, name)
    for path in paths.values():
        if not path.is_file():
            needed = ", ".join(p.name for p in paths.values())
            raise FileFormatError(path, f"missing: capture {name!r} needs {needed}")
    cube, wavelengths = read_envi(paths["cube"])
    refs: dict[str, np.ndarray] = {}
    for key in ("dark", "white"):
        ref, ref_wl = read_envi(paths[key], require_wavelengths=False)
        if ref.shape[1:] != cube.shape[1:]:
            raise FileFormatError(
                paths[key],
                f"reference has {ref.shape[1]} samples x {ref.shape[2]} bands, the scene "
                f"{cube.shape[1]} x {cube.shape[2]}",
            )
        if ref_wl is not None and not np.allclose(ref_wl, wavelengths, atol=1e-3):
            raise FileFormatError(paths[key], f"reference wavelengths differ from those of {paths['cube'].name}")
        refs[key] = ref
    return SpecimCapture(cube, refs["dark"], refs["white"], wavelengths, name, paths)


def write_specim_capture(
    root: str | os.PathLike,
    name: str,
    cube: np.ndarray,
    dark: np.ndarray,
    white: np.ndarray,
    wavelengths_nm: np.ndarray,
) -> dict[str, Path]:
    """Write a Specim-style folder (BIL interleave, ``.raw`` data); returns its header paths.

    ``cube`` (H, W, C), ``dark``/``white`` (L, W, C), all in the dtype to store (uint16
    raw counts on a real camera); ``wavelengths_nm`` (C,).
    """
    paths = specim_paths(root, name)
    paths["cube"].parent.mkdir(parents=True, exist_ok=True)
    cube = np.asarray(cube)
    for key, array in (("dark", np.asarray(dark)), ("white", np.asarray(white))):
        if array.ndim != 3 or cube.ndim != 3 or array.shape[1:] != cube.shape[1:]:
            raise InvalidCubeError(
                f"{paths[key]}: reference shape {array.shape} does not match scene shape {cube.shape} "
                "in samples and bands"
            )
    for key, array in (("dark", dark), ("white", white), ("cube", cube)):
        write_envi(paths[key], array, wavelengths_nm, data_suffix=".raw", interleave="bil")
    return paths
