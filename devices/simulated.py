"""Simulated camera: the physics-based simulator behind the camera interface.

It drives demos, tests and benchmarks. Scenes rotate every ``frames_per_scene`` frames
through ``species`` (and domain states); each frame has its own sensor noise. Dark and
white references come from the same camera model, so calibration is exercised for real.
The simulator (``xeno``) is imported when the camera opens, not when this module loads.

Live mode (default) renders a loop of a few scenes at open, each ``k`` times with exact
noise, and assembles frames from row blocks of those realisations
(``xenoedge.xeno.noise_realisations``): > 60 frames/s at Tivita size, ~250 MB. ``exact_noise=True``
simulates every scene and draws every frame's noise afresh (slow, statistically exact).

Ring mode (``ring=N``, camera string ``sim:...?ring=N``) assembles N such frames per loop scene
at open and then hands them out in turn without copying or computing anything, as a hardware
camera's driver hands out the buffers of its DMA ring: a read costs no CPU, so
``edge-bench --mode pipeline`` can measure the device path alone (docs/bench.md). The noise
then repeats every N frames of a scene; consumers must not write into frames (the daemon does not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from xenoedge.devices.camera import Camera, FrameKind, FramePacer, ReferenceKind

from xenoedge.errors import CameraError, CameraExhaustedError, XenoedgeError
from xenoedge.sensors import SensorProfile

if TYPE_CHECKING:
    from xenoedge.xeno.noise_realisations import NoiseRealisations
    from xenoedge.xeno.scene import Scene

MAX_LOOP_SCENES = 4  # scenes in the live loop when memory allows
MAX_REALISATIONS = 4  # noisy realisations per scene when memory allows


def loop_plan(frame_bytes: int, fixed_bytes: int, memory_mb: float) -> tuple[int, int]:
    """(scenes, realisations per scene) for the live loop within ``memory_mb`` MiB.

    ``fixed_bytes`` is what the camera holds anyway (its compact model); each scene costs
    one ``frame_bytes`` uint16 frame plus half a frame per further realisation. At least
    one scene with two realisations; more realisations first (up to 4 when the budget has
    room for 4 scenes of 2), then more scenes.
    """
    budget = memory_mb * 2**20 - fixed_bytes

    def cost(scenes: int, k: int) -> float:
        return scenes * frame_bytes * (1 + 0.5 * (k - 1))

    scenes = max(1, min(MAX_LOOP_SCENES, int(budget // cost(1, 2))))
    k = 2
    while k < MAX_REALISATIONS and cost(scenes, k + 1) <= budget:
        k += 1
    return scenes, k


class SimulatedCamera(Camera):
    """A camera of any sensor profile that films simulated scenes.

    ``fps`` paces ``read()`` to that frame rate using the injected ``clock_ns`` and
    ``sleep``; ``fps=None`` delivers as fast as the simulator runs.

    Live mode (``exact_noise=False``, default): ``open()`` renders ``loop_scenes`` scenes
    (default: as many as ``memory_mb`` allows, up to 4; see ``loop_plan``) with
    ``realisations`` exact-noise realisations each; scene ``n`` (frames
    ``n * frames_per_scene`` ...) shows loop scene ``n % loop_scenes``. References get
    fresh exact noise per frame (~0.4 s per Tivita frame). ``exact_noise=True``: a new scene
    every ``frames_per_scene`` frames, fresh noise every frame, no loop.
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
        loop_scenes: int | None = None,
        realisations: int | None = None,
        memory_mb: float = 256.0,
        ring: int | None = None,
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
        if loop_scenes is not None and loop_scenes < 1:
            raise CameraError(f"loop_scenes must be >= 1, got {loop_scenes}")
        if realisations is not None and realisations < 2:
            raise CameraError(f"realisations must be >= 2 (frames must differ), got {realisations}")
        if ring is not None and (ring < 2 or exact_noise):
            raise CameraError(f"ring must be >= 2 frames (frames must differ) and needs live mode, got {ring}")
        self.fps, self.exact_noise, self.ring = fps, exact_noise, ring
        self.loop_scenes, self.realisations, self.memory_mb = loop_scenes, realisations, memory_mb
        self._pacer = FramePacer(fps, clock_ns, sleep)
        self._scene_number = -1
        self._loop: list[_LoopScene] = []

    @property
    def on_demand(self) -> bool:
        """Without ``fps`` frames are rendered when read (see ``Camera.on_demand``)."""
        return self.fps is None

    def _open(self) -> None:
        from xenoedge.xeno import camera_model

        self._cm = camera_model
        h, w, _ = self.sensor.cube_shape
        model = camera_model.make_camera_model(self.sensor, h, w, self.seed)
        self._noise_rng = np.random.default_rng([self.seed, 0x5EED])
        self._scene_number = -1
        if self.exact_noise:
            self._model = model
            self._scratch = np.empty(self.sensor.cube_shape, dtype=np.float32)
        else:
            self._compact = camera_model.CompactCameraModel(model)
            del model
            self._render_loop()

    def _close(self) -> None:
        self._model = self._scratch = self._compact = self._scene = self._mean = self._sigma = None  # type: ignore[assignment]
        self._loop = []

    @property
    def nbytes(self) -> int:
        """Bytes the open live camera holds: compact model plus the rendered loop (0 if exact)."""
        if self.exact_noise or not self.is_open:
            return 0
        return self._compact.nbytes + sum(s.nbytes for s in self._loop)

    @property
    def loop_shape(self) -> tuple[int, int]:
        """(scenes, realisations per scene) of the live loop; (0, 0) in exact mode or closed."""
        return (len(self._loop), self._loop[0].realisations) if self._loop else (0, 0)

    def _render_loop(self) -> None:
        from xenoedge.xeno.noise_realisations import NoiseRealisations

        frame_bytes = 2 * int(np.prod(self.sensor.raw_shape if self.sensor.mosaic else self.sensor.cube_shape))
        scenes, k = loop_plan(frame_bytes, self._compact.nbytes, self.memory_mb)
        scenes, k = self.loop_scenes or scenes, self.realisations or k
        self._loop = []
        for n in range(scenes):
            scene = self._simulate(n)
            frames: NoiseRealisations | None = None
            for i in range(k):  # one realisation at a time: the peak is the scene plus two frames
                rng = np.random.default_rng([self.seed, n, i, 0xF1A3E])
                raw = self._cm.render_raw(self._compact, scene.reflectance, self.exposure_ms, rng)
                raw = self._cm.mosaic_from_cube(raw, self.sensor) if self.sensor.mosaic else raw
                if frames is None:
                    frames = NoiseRealisations(raw)
                else:
                    frames.add(raw)
                del raw
            assert frames is not None
            ring = None
            if self.ring:  # assembled once; the realisations they came from are not kept
                ring_rng = np.random.default_rng([self.seed, n, 0x121C])
                ring = [frames.frame(frames.choose(ring_rng)).copy() for _ in range(self.ring)]
            kept = None if ring else frames
            self._loop.append(_LoopScene(n, scene.labels, scene.states, scene.meta, frames.k, kept, ring))
            del scene, frames
        self._loop_exposure_ms = self.exposure_ms

    def scene_seed(self, scene_number: int) -> int:
        """Seed of the ``scene_number``-th scene: reproducible from the camera seed."""
        return int(np.random.default_rng([self.seed, scene_number]).integers(2**31))

    def _simulate(self, scene_number: int) -> Scene:
        """Simulate the ``scene_number``-th scene (reproducible from the camera seed)."""
        from xenoedge.xeno.scene import SceneConfig, simulate_scene

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
            return simulate_scene(config, self.scene_seed(scene_number), self.sensor.wavelengths(), self.sensor.fwhm())
        except XenoedgeError as exc:
            raise CameraError(f"camera {self.camera_id}: cannot simulate scene {scene_number}: {exc}") from exc

    def _load_scene(self, scene_number: int) -> None:
        """Exact mode: simulate scene ``scene_number`` and keep its counts and sigma."""
        scene = self._simulate(scene_number)
        self._scene = scene
        self._mean = self._cm.expected_counts(self._model, scene.reflectance, self.exposure_ms)
        self._sigma = self._cm.noise_sigma(self._model, self._mean)
        self._scene_number = scene_number

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """The scene behind the last frame: (h, w, C) float32 apparent reflectance and the
        (h, w, C) float32 noise sigma in counts the camera model applied (for tests and
        benchmarks that check calibration against the truth). Live mode simulates the scene
        again for this (~0.1-0.3 s at Tivita size); the camera does not keep it."""
        if self._scene_number < 0:
            raise CameraError(f"camera {self.camera_id}: no frame read yet")
        if self.exact_noise:
            return self._scene.reflectance, self._sigma
        reflectance = self._simulate(self._scene_number).reflectance
        return reflectance, self._cm.compact_ground_truth(self._compact, reflectance, self.exposure_ms)

    def _read(self) -> tuple[np.ndarray, FrameKind, dict]:
        index = self._next_index
        if self.max_frames is not None and index >= self.max_frames:
            raise CameraExhaustedError(f"camera {self.camera_id}: all {self.max_frames} frames delivered")
        kind: FrameKind = "mosaic_raw" if self.sensor.mosaic else "raw"
        if self.exact_noise:
            scene_number = index // self.frames_per_scene
            if scene_number != self._scene_number:
                self._load_scene(scene_number)
            self._pacer.wait()
            raw = self._cm.sample_raw(self._model, self._mean, self._sigma, self._noise_rng, self._scratch)
            labels, states, meta = self._scene.labels, self._scene.states, self._scene.meta
        else:
            if self.exposure_ms != self._loop_exposure_ms:
                self._render_loop()  # someone changed the exposure: film the loop again
            loop = self._loop[(index // self.frames_per_scene) % len(self._loop)]
            scene_number = self._scene_number = loop.number
            self._pacer.wait()
            raw = loop.ring[index % len(loop.ring)] if loop.ring else loop.frames.next_frame(self._noise_rng)
            labels, states, meta = loop.labels, loop.states, loop.meta
        extras = {
            "labels": labels,  # (h, w) at cube resolution, also for mosaic sensors
            "states": states,
            "source": f"sim:{self.domain}:{meta['species']}:scene{scene_number}",
            "scene": {k: v for k, v in meta.items() if k != "regions"},
        }
        return raw, kind, extras

    def _read_reference(self, kind: ReferenceKind) -> tuple[np.ndarray, FrameKind, dict]:
        frame_kind: FrameKind = "mosaic_raw" if self.sensor.mosaic else "raw"
        if self.exact_noise:
            mean = self._cm.reference_counts(self._model, kind, self.exposure_ms)
            sigma = self._cm.noise_sigma(self._model, mean)
            raw = self._cm.sample_raw(self._model, mean, sigma, self._noise_rng, self._scratch)
        else:
            cube = self._cm.render_raw(self._compact, kind, self.exposure_ms, self._noise_rng)
            raw = self._cm.mosaic_from_cube(cube, self.sensor) if self.sensor.mosaic else cube
        return raw, frame_kind, {"source": f"sim:{kind}-reference"}


@dataclass
class _LoopScene:
    """One scene of the live loop: its ground truth and its noisy realisations (live mode) or the
    frames assembled from them (ring mode)."""

    number: int
    labels: np.ndarray  # (h, w) uint8
    states: np.ndarray  # (h, w) uint8
    meta: dict
    realisations: int
    frames: NoiseRealisations | None
    ring: list[np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        held = self.frames.nbytes if self.frames is not None else sum(f.nbytes for f in self.ring or ())
        return held + self.labels.nbytes + self.states.nbytes
