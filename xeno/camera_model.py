"""Camera model: reflectance -> raw counts, and the camera's own dark and white frames.

    raw = R · white(x, y, λ) · exposure/exposure_ref + dark(x, y, λ) + noise, clipped to
          [0, max count] and rounded to uint16.

``white`` is lamp spectrum × sensor QE × vignetting × the profile's white level (what a
white tile of reflectance 1 gives); ``dark`` is the profile's dark level with a per-line
and band pattern (as Tivita's DarkPattern stores it), a little fixed-pattern noise and a
few hot pixels; a few dead pixels barely respond. Noise is shot noise
(variance = gain · signal) plus read noise. Mosaic sensors get the cube sampled through
their pattern, so a mosaic raw frame is (H, W) and the profile's band order applies.

The live simulated camera keeps a ``CompactCameraModel`` (a quarter of the memory) and
renders noisy frames with ``render_raw`` in row chunks (no cube-sized float temporaries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xenoedge.sensors import SensorProfile

REFERENCE_EXPOSURE_MS = 10.0
DEFECT_FRACTION = 2e-4  # fraction of pixels that are hot, and the same fraction dead


def lamp_times_qe(wavelengths_nm: np.ndarray) -> np.ndarray:
    """(C,) relative response, peak 1: a 3000 K halogen lamp seen by a silicon sensor."""
    wl_nm = np.asarray(wavelengths_nm, dtype=np.float64)
    wl_m = wl_nm * 1e-9
    planck = 1.0 / (wl_m**5 * (np.exp(1.4388e-2 / (wl_m * 3000.0)) - 1.0))
    qe = 0.1 + 0.9 * np.exp(-0.5 * ((wl_nm - 640.0) / 190.0) ** 2)
    response = planck * qe
    return (response / response.max()).astype(np.float32)


@dataclass
class CameraModel:
    """One physical camera: its references at cube resolution (h, w, C), float32 counts."""

    sensor: SensorProfile
    white_counts: np.ndarray  # (h, w, C) signal of a reflectance-1 tile at the reference exposure
    dark_counts: np.ndarray  # (h, w, C)
    seed: int

    @property
    def cube_shape(self) -> tuple[int, int, int]:
        return self.white_counts.shape  # type: ignore[return-value]


def make_camera_model(sensor: SensorProfile, height: int, width: int, seed: int) -> CameraModel:
    """A camera of ``sensor`` type with cube size (height, width); ``seed`` is its serial."""
    rng = np.random.default_rng([seed, 0xCA3])
    c = sensor.n_bands
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) / (0.25 * (height**2 + width**2))
    vignetting = 1.0 - 0.3 * r2
    white = sensor.white_level_counts * lamp_times_qe(sensor.wavelengths_nm)[None, None, :] * vignetting[..., None]
    line_band = sensor.dark_level_counts + 1.5 * rng.standard_normal((height, 1, c), dtype=np.float32)
    dark = rng.standard_normal((height, width, c), dtype=np.float32)  # in place: one cube, not three
    dark *= np.float32(0.4)
    dark += line_band
    n_defects = max(1, int(DEFECT_FRACTION * height * width))
    hot = rng.integers(0, height * width, n_defects)
    dead = rng.integers(0, height * width, n_defects)
    dark.reshape(height * width, c)[hot] += rng.uniform(100, 400, (n_defects, 1))
    white.reshape(height * width, c)[dead] *= 0.02
    return CameraModel(sensor, white.astype(np.float32, copy=False), dark.astype(np.float32, copy=False), seed)


def expected_counts(model: CameraModel, reflectance: np.ndarray, exposure_ms: float) -> np.ndarray:
    """(h, w, C) float32 noise-free counts for an (h, w, C) reflectance cube."""
    mean = reflectance * model.white_counts
    mean *= np.float32(exposure_ms / REFERENCE_EXPOSURE_MS)
    mean += model.dark_counts
    return mean


def noise_sigma(model: CameraModel, mean_counts: np.ndarray) -> np.ndarray:
    """(h, w, C) float32 per-pixel noise sigma in counts: shot + read noise."""
    signal = np.maximum(mean_counts - model.dark_counts, 0.0)
    signal *= np.float32(model.sensor.gain_counts_per_electron)
    signal += np.float32(model.sensor.read_noise_counts**2)
    return np.sqrt(signal, out=signal)


def mosaic_from_cube(cube: np.ndarray, sensor: SensorProfile) -> np.ndarray:
    """(H, W) raw mosaic frame from an (h, w, C) per-band cube through the sensor's pattern.

    Pixel (r, c) inside the active area sees band ``pattern[r % p][c % p]`` of cube pixel
    (r // p, c // p); pixels outside whole super-pixels read 0.
    """
    p = sensor.pattern_size
    h, w, _ = cube.shape
    tiles = cube[:, :, sensor.mosaic_array()]  # (h, w, p, p)
    active = tiles.transpose(0, 2, 1, 3).reshape(h * p, w * p)
    frame = np.zeros((sensor.height, sensor.width), dtype=cube.dtype)
    frame[: h * p, : w * p] = active
    return frame


class NoisePool:
    """Pre-drawn N(0, 1) float32 samples; each frame reads a window at a random offset.

    Drawing 30 M Gaussian samples costs ~0.3 s, more than everything else in a frame. A
    pool of ``frames`` frames' worth, read at a fresh random offset per frame, gives every
    frame white Gaussian noise at the cost of a copy. The catch, documented in
    docs/simulator.md: noise of different frames is the same sequence shifted, so it is
    not independent between frames (averages over many frames still shrink as 1/sqrt(N)
    unless two offsets coincide). Data sets use exact noise; the live camera no longer uses
    a pool (see ``xenoedge.xeno.noise_realisations``).
    """

    def __init__(self, n_values: int, rng: np.random.Generator, frames: float = 2.0):
        self.n_values = n_values
        self._pool = rng.standard_normal(int(n_values * frames), dtype=np.float32)

    def fill(self, out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if out.size != self.n_values:
            raise ValueError(f"noise pool holds frames of {self.n_values} values, not {out.size}")
        start = int(rng.integers(0, self._pool.size - self.n_values + 1))
        out.reshape(-1)[:] = self._pool[start : start + self.n_values]
        return out


def sample_raw(
    model: CameraModel,
    mean_counts: np.ndarray,
    sigma_counts: np.ndarray,
    rng: np.random.Generator,
    scratch: np.ndarray | None = None,
    noise_pool: NoisePool | None = None,
    mosaic: bool = True,
) -> np.ndarray:
    """uint16 raw frame: (h, w, C), or (H, W) through the mosaic for mosaic sensors.

    ``scratch`` is an optional float32 buffer of the cube shape reused between frames;
    ``noise_pool`` trades exact per-frame noise for speed (see ``NoisePool``);
    ``mosaic=False`` keeps a mosaic sensor's frame as its (h, w, C) cube.
    """
    if scratch is None:
        scratch = np.empty(mean_counts.shape, dtype=np.float32)
    if noise_pool is not None:
        noise_pool.fill(scratch, rng)
    else:
        rng.standard_normal(out=scratch, dtype=np.float32)
    scratch *= sigma_counts
    scratch += mean_counts
    np.clip(scratch, 0.0, float(model.sensor.max_counts), out=scratch)
    np.rint(scratch, out=scratch)
    raw = np.empty(scratch.shape, dtype=np.uint16)
    np.copyto(raw, scratch, casting="unsafe")
    return mosaic_from_cube(raw, model.sensor) if model.sensor.mosaic and mosaic else raw


def reference_counts(model: CameraModel, kind: str, exposure_ms: float) -> np.ndarray:
    """(h, w, C) float32 noise-free dark or white-tile counts."""
    if kind == "dark":
        return model.dark_counts.copy()
    return expected_counts(model, np.ones(model.cube_shape, dtype=np.float32), exposure_ms)


ROWS_PER_CHUNK = 16  # cube rows per step of the chunked sampler: float temporaries stay ~4 MB at Tivita size


class CompactCameraModel:
    """A ``CameraModel`` in a quarter of its memory, for the live simulated camera.

    Dark counts are kept as uint16 fixed point (1/``scale`` count, scale a power of two:
    1/64 count for a 10-bit sensor). White counts are kept as their rank-1 factors
    vignetting (h, w) × spectrum (C) when that reproduces them to 0.01 count (true for
    ``make_camera_model``'s cameras, dead pixels included), else in fixed point too. At
    Tivita size that is 62 MB instead of the model's 246 MB. ``rows`` gives float32 counts
    back for a block of cube rows.
    """

    def __init__(self, model: CameraModel, rows_per_chunk: int = ROWS_PER_CHUNK):
        self.sensor = model.sensor
        self.cube_shape = model.cube_shape
        h = self.cube_shape[0]
        top = float(max(model.dark_counts.max(), model.white_counts.max(), 1.0))
        self.scale = float(2 ** np.floor(np.log2(65535.0 / top)))
        self._dark_q = np.empty(self.cube_shape, dtype=np.uint16)
        for r0 in range(0, h, rows_per_chunk):
            self._dark_q[r0 : r0 + rows_per_chunk] = np.rint(model.dark_counts[r0 : r0 + rows_per_chunk] * self.scale)
        self._white_factors = _rank_one(model.white_counts, rows_per_chunk)
        self._white_q: np.ndarray | None = None
        if self._white_factors is None:
            self._white_q = np.empty(self.cube_shape, dtype=np.uint16)
            for r0 in range(0, h, rows_per_chunk):
                block = model.white_counts[r0 : r0 + rows_per_chunk]
                self._white_q[r0 : r0 + rows_per_chunk] = np.rint(block * self.scale)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        parts = [self._dark_q, self._white_q, *(self._white_factors or ())]
        return sum(p.nbytes for p in parts if p is not None)

    def rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """(dark, white) float32 counts of cube rows r0:r1, each (r1 - r0, w, C)."""
        dark = self._dark_q[r0:r1].astype(np.float32)
        dark *= np.float32(1.0 / self.scale)
        if self._white_factors is not None:
            image, spectrum = self._white_factors
            white = image[r0:r1, :, None] * spectrum
        else:
            white = self._white_q[r0:r1].astype(np.float32)  # type: ignore[index]
            white *= np.float32(1.0 / self.scale)
        return dark, white


def _rank_one(white: np.ndarray, rows_per_chunk: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(image (h, w), spectrum (C)) float32 with image ⊗ spectrum == white to 0.01 count, or None."""
    h, w, _ = white.shape
    brightest = np.unravel_index(int(np.argmax(white.sum(axis=2))), (h, w))
    spectrum = white[brightest].astype(np.float32)
    band = int(np.argmax(spectrum))
    if spectrum[band] <= 0:
        return None
    spectrum = spectrum / spectrum[band]
    image = np.ascontiguousarray(white[:, :, band])
    for r0 in range(0, h, rows_per_chunk):
        block = white[r0 : r0 + rows_per_chunk]
        if np.abs(image[r0 : r0 + rows_per_chunk, :, None] * spectrum - block).max() > 0.01:
            return None
    return image, spectrum


def render_raw(
    compact: CompactCameraModel,
    scene: np.ndarray | str,
    exposure_ms: float,
    rng: np.random.Generator,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> np.ndarray:
    """(h, w, C) uint16 raw counts with fresh shot + read noise, computed in row chunks.

    ``scene`` is an (h, w, C) reflectance cube or "dark" / "white" (the camera's own
    references). Same model as ``expected_counts`` / ``noise_sigma`` / ``sample_raw``
    (exact per-value Gaussian noise, clipped to [0, max count], rounded), but no cube-sized
    float temporaries: ~0.4 s per Tivita frame on one core, 61 MB result.
    """
    h, w, c = compact.cube_shape
    out = np.empty((h, w, c), dtype=np.uint16)
    for r0 in range(0, h, rows_per_chunk):
        r1 = min(h, r0 + rows_per_chunk)
        mean, sigma = _mean_and_sigma(compact, scene, exposure_ms, r0, r1)
        noise = rng.standard_normal(mean.shape, dtype=np.float32)
        noise *= sigma
        noise += mean
        np.clip(noise, 0.0, float(compact.sensor.max_counts), out=noise)
        np.rint(noise, out=noise)
        np.copyto(out[r0:r1], noise, casting="unsafe")
    return out


def compact_ground_truth(compact: CompactCameraModel, reflectance: np.ndarray, exposure_ms: float) -> np.ndarray:
    """(h, w, C) float32 noise sigma in counts of ``reflectance`` filmed by ``compact``."""
    h = compact.cube_shape[0]
    sigma = np.empty(compact.cube_shape, dtype=np.float32)
    for r0 in range(0, h, ROWS_PER_CHUNK):
        r1 = min(h, r0 + ROWS_PER_CHUNK)
        sigma[r0:r1] = _mean_and_sigma(compact, reflectance, exposure_ms, r0, r1)[1]
    return sigma


def _mean_and_sigma(
    compact: CompactCameraModel, scene: np.ndarray | str, exposure_ms: float, r0: int, r1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected counts and noise sigma (counts), float32 (r1 - r0, w, C)."""
    dark, white = compact.rows(r0, r1)
    if isinstance(scene, str):
        signal = np.zeros_like(dark) if scene == "dark" else white
    else:
        signal = white * scene[r0:r1]
    signal *= np.float32(exposure_ms / REFERENCE_EXPOSURE_MS)
    mean = signal + dark
    sigma = np.maximum(signal, 0.0, out=signal)
    sigma *= np.float32(compact.sensor.gain_counts_per_electron)
    sigma += np.float32(compact.sensor.read_noise_counts**2)
    np.sqrt(sigma, out=sigma)
    return mean, sigma
