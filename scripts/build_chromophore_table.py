"""Build xeno/data/chromophores.npz from the absorption tables shipped in the simpa wheel.

Run once by a maintainer (needs network to PyPI); the output is committed, so
xenoedge never depends on simpa at run time:

    python scripts/build_chromophore_table.py

Steps: ``pip download simpa==1.0.0 --no-deps`` into a temporary folder, read
``simpa/utils/libraries/absorption_spectra_data/{Oxyhemoglobin,Deoxyhemoglobin,Water,Fat,
Melanin}.npz`` (keys ``wavelengths``, ``values``) straight from the wheel (a zip), resample
each to a 1 nm grid 450-1000 nm by linear interpolation, and write one npz with a
``wavelengths_nm`` array plus one absorption array per chromophore in cm^-1.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

SIMPA_VERSION = "1.0.0"
TABLE_DIR = "simpa/utils/libraries/absorption_spectra_data"
CHROMOPHORES = {
    "hbo2": "Oxyhemoglobin",
    "hb": "Deoxyhemoglobin",
    "water": "Water",
    "fat": "Fat",
    "melanin": "Melanin",
}
GRID_NM = np.arange(450.0, 1001.0, 1.0)
OUT = Path(__file__).resolve().parents[1] / "xeno" / "data" / "chromophores.npz"


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"simpa=={SIMPA_VERSION}", "--no-deps", "-d", str(folder)],
        check=True,
    )
    wheels = sorted(folder.glob("simpa-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download left no simpa wheel in {folder}")
    return wheels[0]


def read_tables(wheel: Path) -> dict[str, np.ndarray]:
    tables = {}
    with zipfile.ZipFile(wheel) as archive:
        for key, stem in CHROMOPHORES.items():
            with archive.open(f"{TABLE_DIR}/{stem}.npz") as member:
                data = np.load(io.BytesIO(member.read()))
                wavelengths, values = data["wavelengths"].astype(float), data["values"].astype(float)
            if wavelengths[0] > GRID_NM[0] or wavelengths[-1] < GRID_NM[-1]:
                raise SystemExit(f"{stem}: table covers {wavelengths[0]}-{wavelengths[-1]} nm, need 450-1000")
            tables[key] = np.interp(GRID_NM, wavelengths, values).astype(np.float32)
    return tables


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tables = read_tables(download_wheel(Path(tmp)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, wavelengths_nm=GRID_NM.astype(np.float32), **tables)
    print(f"wrote {OUT} ({', '.join(tables)}; {GRID_NM.size} wavelengths)")


if __name__ == "__main__":
    main()
