"""A raw capture on disk and the references it is calibrated with (``xenoedge calibrate apply``).

Two kinds of capture:

- a Specim capture folder (``ROOT/capture/NAME.hdr`` with DARKREF_/WHITEREF_ companions): its
  own references unless a references file is given; its sensor profile is inferred from its
  counts (``specim_sensor``);
- a raw cube file (``.hdr``, ``.npy``, ``.npz``) with a references file; a ``.npy`` has no
  wavelengths, so they come from the named sensor or the references' sensor. A Tivita SpecCube
  holds reflectance already and is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xenoedge.calibration.importers import references_from_specim
from xenoedge.calibration.inferred_sensor import specim_sensor
from xenoedge.calibration.references import References
from xenoedge.calibration.store import load_references
from xenoedge.devices.formats import cube_format, read_cube, read_specim_capture

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SensorProfile, get_sensor

#: ``RawCapture.references_source`` of a Specim folder calibrated with its own references.
OWN_SPECIM_REFERENCES = "the capture's own DARKREF/WHITEREF"


@dataclass(frozen=True)
class RawCapture:
    """``raw`` (H, W, C) counts as stored; ``wavelengths_nm`` (C,) band centres; ``references``
    complete; ``references_source`` says where they came from; ``sensor`` is the capture's
    profile when the capture defines one (a Specim folder), else None; ``name`` names the outputs."""

    name: str
    raw: np.ndarray
    wavelengths_nm: np.ndarray
    references: References
    references_source: str
    sensor: SensorProfile | None


def read_raw_capture(
    path: str | os.PathLike, *, references_file: str | os.PathLike | None = None, sensor: str | None = None
) -> RawCapture:
    """Read the capture at ``path`` (a Specim folder or a raw cube file) with its references.

    ``references_file`` (required for a cube file) replaces a Specim folder's own references;
    ``sensor`` names the profile whose wavelengths a ``.npy`` cube gets (default: the
    references' sensor). ``CalibrationError`` naming ``path`` for a Tivita SpecCube, a cube file
    without ``references_file``, and a cube without wavelengths from an unknown sensor.
    """
    path = Path(path)
    if path.is_dir():
        specim = read_specim_capture(path)
        profile = specim_sensor(specim.name, specim.cube, specim.dark, specim.white, specim.wavelengths_nm)
        if references_file is None:
            references = references_from_specim(
                specim.dark, specim.white, profile, "specim", wavelengths_nm=specim.wavelengths_nm
            )
            source = OWN_SPECIM_REFERENCES
        else:
            references, source = load_references(references_file, require_complete=True), str(references_file)
        return RawCapture(specim.name, specim.cube, specim.wavelengths_nm, references, source, profile)
    fmt = cube_format(path)
    name = path.name[: -len(fmt.suffix)]
    if fmt.name == "tivita":
        raise CalibrationError(f"{path}: a Tivita SpecCube already holds reflectance; nothing to calibrate")
    raw, wavelengths = read_cube(path)
    if references_file is None:
        raise CalibrationError(f"{path}: give --refs (this file carries no references)")
    references = load_references(references_file, require_complete=True)
    if wavelengths is None:
        known = sensor or references.sensor
        try:
            wavelengths = get_sensor(known).wavelengths()
        except KeyError:
            raise CalibrationError(f"{path}: no wavelengths in the file; give --sensor") from None
    return RawCapture(name, raw, wavelengths, references, str(references_file), None)
