"""Simulated camera: the physics-based simulator behind the camera interface.

It drives demos, tests and benchmarks. Scenes rotate every ``frames_per_scene`` frames
through ``species`` (and domain states); each frame has fresh sensor noise. Dark and
white references come from the same camera model, so calibration is exercised for real.
The simulator (``xeno``) is imported when the camera opens, not when this module loads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from calibration.errors import CameraError, CameraExhaustedError, XenoedgeError
from calibration.sensors import SensorProfile
from devices.camera import Camera, FrameKind, FramePacer, ReferenceKind


class SimulatedCamera(Camera):
    """A camera of any sensor profile that films simulated scenes.

    ``fps`` paces ``read()`` to that frame rate using the injected ``clock_ns`` and
    ``sleep``; ``fps=None`` delivers as fast as the simulator runs. ``exact_noise=False``
    (default) draws sensor noise from a pre-drawn pool (see ``xeno.camera_model.NoisePool``).
    """

    def __init__(
        self,
        sensor: SensorProfile,
        *,
        domain: str = "surgical",
        species: Sequence[str] = ("human",),
        states: Sequence[str] | None = None,
        pathological_probability: float = 0.5,
        seed: int = 0,
        frames_per_scene: int = 30,
        max_frames: int | None = None,
        fps: float | None = None,
        exposure_ms: float = 10.0,
        camera_id: str | None = None,
        exact_noise: bool = False,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(camera_id or f"sim-{sensor.name}-{seed}", sensor, exposure_ms, clock_ns)
        if not species:
            raise CameraError("simulated camera needs at least one species")
        if frames_per_scene < 1:
            raise CameraError(f"frames_per_scene must be >= 1, got {frames_per_scene}")
        if fps is not None and fps <= 0:
            raise CameraError(f"fps must be positive, got {fps}")
        self.domain, self.species, self.states = domain, tuple(species), tuple(states) if states else None
        self.pathological_probability = pathological_probability
        self.seed, self.frames_per_scene, self.max_frames = seed, frames_per_scene, max_frames
        self.fps, self.exact_noise = fps, exact_noise
        self._pacer = FramePacer(fps, clock_ns, sleep)
        self._scene_number = -1

    def _open(self) -> None:
        from xeno import camera_model

        self._cm = camera_model
        h, w, _ = self.sensor.cube_shape
        self._model = camera_model.make_camera_model(self.sensor, h, w, self.seed)
        self._noise_rng = np.random.default_rng([self.seed, 0x5EED])
        self._scratch = np.empty(self.sensor.cube_shape, dtype=np.float32)
        self._pool = None if self.exact_noise else camera_model.NoisePool(self._scratch.size, self._noise_rng)
        self._scene_number = -1

    def _close(self) -> None:
        self._model = self._pool = self._scratch = None  # type: ignore[assignment]

    def scene_seed(self, scene_number: int) -> int:
        """Seed of the ``scene_number``-th scene: reproducible from the camera seed."""
        return int(np.random.default_rng([self.seed, scene_number]).integers(2**31))

    def _load_scene(self, scene_number: int) -> None:
        from xeno.scene import SceneConfig, simulate_scene

        h, w, _ = self.sensor.cube_shape
        species = self.species[scene_number % len(self.species)]
        config = SceneConfig(
            domain=self.domain,
            species=species,
            subject=scene_number // len(self.species),
            height=h,
            width=w,
            states=self.states,
            pathological_probability=self.pathological_probability,
        )
        try:
            scene = simulate_scene(config, self.scene_seed(scene_number), self.sensor.wavelengths(), self.sensor.fwhm())
        except XenoedgeError as exc:
            raise CameraError(f"camera {self.camera_id}: cannot simulate scene {scene_number}: {exc}") from exc
        self._scene = scene
        self._mean = self._cm.expected_counts(self._model, scene.reflectance, self.exposure_ms)
        self._sigma = self._cm.noise_sigma(self._model, self._mean)
        self._scene_number = scene_number

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """The scene behind the last frame: (h, w, C) float32 apparent reflectance and the
        (h, w, C) float32 noise sigma in counts the camera model applied (for tests and
        benchmarks that check calibration against the truth)."""
        if self._scene_number < 0:
            raise CameraError(f"camera {self.camera_id}: no frame read yet")
        return self._scene.reflectance, self._sigma

    def _read(self) -> tuple[np.ndarray, FrameKind, dict]:
        index = self._next_index
        if self.max_frames is not None and index >= self.max_frames:
            raise CameraExhaustedError(f"camera {self.camera_id}: all {self.max_frames} frames delivered")
        scene_number = index // self.frames_per_scene
        if scene_number != self._scene_number:
            self._load_scene(scene_number)
        self._pacer.wait()
        raw = self._cm.sample_raw(self._model, self._mean, self._sigma, self._noise_rng, self._scratch, self._pool)
        extras = {
            "labels": self._scene.labels,  # (h, w) at cube resolution, also for mosaic sensors
            "states": self._scene.states,
            "source": f"sim:{self.domain}:{self._scene.meta['species']}:scene{scene_number}",
            "scene": {k: v for k, v in self._scene.meta.items() if k != "regions"},
        }
        return raw, ("mosaic_raw" if self.sensor.mosaic else "raw"), extras

    def _read_reference(self, kind: ReferenceKind) -> tuple[np.ndarray, FrameKind, dict]:
        mean = self._cm.reference_counts(self._model, kind, self.exposure_ms)
        sigma = self._cm.noise_sigma(self._model, mean)
        raw = self._cm.sample_raw(self._model, mean, sigma, self._noise_rng, self._scratch, self._pool)
        return raw, ("mosaic_raw" if self.sensor.mosaic else "raw"), {"source": f"sim:{kind}-reference"}
