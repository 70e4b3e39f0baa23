"""Sensor profiles: one data table that names every sensor xenoedge knows.

A profile says what a camera delivers: band centres and FWHM (nm), frame size,
bit depth, the snapshot-mosaic pattern if any, and the noise figures the simulator
and reference validation use. Everything that needs sensor facts reads this table.

>>> get_sensor("tivita").cube_shape
(480, 640, 100)
>>> get_sensor("mosaic-5x5-nir").cube_shape
(217, 409, 25)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from xenoedge.errors import UnknownNameError


@dataclass(frozen=True)
class SensorProfile:
    """What one kind of spectral camera delivers.

    ``height``/``width`` are the raw frame size in pixels as read off the sensor; for a
    snapshot-mosaic sensor that is the mosaic frame, and the cube is smaller by the
    pattern size (only whole super-pixels inside the frame count).
    ``mosaic[r][c]`` is the band index (into ``wavelengths_nm``) seen by the pixel at
    ``(row % p, col % p)``, where ``p`` is the pattern size.
    """

    name: str
    description: str
    height: int
    width: int
    wavelengths_nm: tuple[float, ...]
    fwhm_nm: tuple[float, ...]
    bit_depth: int
    saturation_counts: int
    dark_level_counts: float
    read_noise_counts: float
    white_level_counts: float
    gain_counts_per_electron: float
    mosaic: tuple[tuple[int, ...], ...] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def n_bands(self) -> int:
        return len(self.wavelengths_nm)

    @property
    def max_counts(self) -> int:
        """Largest raw count the ADC can report (1023 for 10 bit)."""
        return (1 << self.bit_depth) - 1

    @property
    def pattern_size(self) -> int:
        """Mosaic pattern edge in pixels (1 for a non-mosaic sensor)."""
        return len(self.mosaic) if self.mosaic else 1

    @property
    def cube_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the reflectance cube this sensor yields."""
        p = self.pattern_size
        return (self.height // p, self.width // p, self.n_bands)

    @property
    def raw_shape(self) -> tuple[int, ...]:
        """Shape of a raw frame: (H, W) for a mosaic sensor, (H, W, C) otherwise."""
        return (self.height, self.width) if self.mosaic else (self.height, self.width, self.n_bands)

    def wavelengths(self) -> np.ndarray:
        """(C,) float32 band centres in nm."""
        return np.asarray(self.wavelengths_nm, dtype=np.float32)

    def fwhm(self) -> np.ndarray:
        """(C,) float32 band full width at half maximum in nm."""
        return np.asarray(self.fwhm_nm, dtype=np.float32)

    def mosaic_array(self) -> np.ndarray:
        """(p, p) int band index per pattern position; raises if the sensor has no mosaic."""
        if not self.mosaic:
            raise ValueError(f"sensor {self.name!r} has no mosaic pattern")
        return np.asarray(self.mosaic, dtype=np.int64)

    @property
    def signature(self) -> str:
        """Compatibility string: a model built for one signature runs on frames of the same one.

        Name plus a short hash of band centres, FWHM, cube shape and bit depth, so two
        profiles that would give different cubes never share a signature.
        """
        text = repr((self.wavelengths_nm, self.fwhm_nm, self.cube_shape, self.bit_depth, self.mosaic))
        return f"{self.name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _linspace(start: float, stop: float, n: int) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in np.linspace(start, stop, n))


SENSORS: dict[str, SensorProfile] = {
    p.name: p
    for p in (
        SensorProfile(
            name="tivita",
            description="Tivita-like push-broom tissue camera: 480x640, 100 bands 500-1000 nm, 10 bit",
            height=480,
            width=640,
            wavelengths_nm=_linspace(500.0, 1000.0, 100),
            fwhm_nm=(10.0,) * 100,
            bit_depth=10,
            saturation_counts=1000,
            dark_level_counts=60.0,
            read_noise_counts=2.0,
            white_level_counts=800.0,
            gain_counts_per_electron=0.08,
        ),
        SensorProfile(
            name="mosaic-5x5-nir",
            description="Handheld snapshot-mosaic NIR sensor: 2048x1088, 5x5 pattern, 25 bands 600-975 nm",
            height=1088,
            width=2048,
            wavelengths_nm=_linspace(600.0, 975.0, 25),
            fwhm_nm=(15.0,) * 25,
            bit_depth=10,
            saturation_counts=1000,
            dark_level_counts=40.0,
            read_noise_counts=3.0,
            white_level_counts=700.0,
            gain_counts_per_electron=0.1,
            # Band order on the chip is not monotonic, as on real mosaic sensors.
            mosaic=(
                (23, 9, 12, 3, 18),
                (6, 24, 7, 11, 1),
                (20, 19, 17, 16, 2),
                (4, 22, 15, 10, 13),
                (0, 5, 21, 14, 8),
            ),
        ),
        SensorProfile(
            name="mosaic-4x4-vis",
            description="Snapshot-mosaic visible sensor: 2048x1088, 4x4 pattern, 16 bands 460-630 nm",
            height=1088,
            width=2048,
            wavelengths_nm=_linspace(460.0, 630.0, 16),
            fwhm_nm=(12.0,) * 16,
            bit_depth=10,
            saturation_counts=1000,
            dark_level_counts=40.0,
            read_noise_counts=3.0,
            white_level_counts=700.0,
            gain_counts_per_electron=0.1,
            mosaic=(
                (13, 1, 10, 0),
                (2, 7, 9, 8),
                (15, 6, 4, 3),
                (12, 5, 11, 14),
            ),
        ),
    )
}


def get_sensor(name: str) -> SensorProfile:
    """The profile called ``name``; raises ``UnknownNameError`` listing the known ones."""
    try:
        return SENSORS[name]
    except KeyError:
        raise UnknownNameError("sensor profile", name, sorted(SENSORS)) from None


def custom_sensor(
    name: str, wavelengths_nm: np.ndarray, height: int, width: int, bit_depth: int, fwhm_nm: np.ndarray | None = None
) -> SensorProfile:
    """A profile for a camera that is not in the table (e.g. a Specim capture folder).

    FWHM defaults to the band spacing; the saturation threshold is the same fraction of the
    full scale as for the 10-bit sensors (1000 of 1023); noise figures are unknown (0).
    """
    wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
    fwhm = np.gradient(wl) if fwhm_nm is None and wl.size > 1 else np.ones_like(wl) if fwhm_nm is None else fwhm_nm
    max_counts = (1 << bit_depth) - 1
    return SensorProfile(
        name=name,
        description=f"custom sensor {name}: {height}x{width}, {wl.size} bands, {bit_depth} bit",
        height=height,
        width=width,
        wavelengths_nm=tuple(round(float(v), 3) for v in wl),
        fwhm_nm=tuple(round(float(v), 3) for v in np.asarray(fwhm).ravel()),
        bit_depth=bit_depth,
        saturation_counts=round(max_counts * 1000 / 1023),
        dark_level_counts=0.0,
        read_noise_counts=0.0,
        white_level_counts=0.0,
        gain_counts_per_electron=0.0,
    )
