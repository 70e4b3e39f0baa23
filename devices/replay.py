"""Replay camera: plays cube files from a folder as if a camera delivered them.

Playlist: every file under ``folder`` (sub-folders included, so Specim capture folders
``NAME/capture/NAME.hdr`` and Tivita capture folders work) whose name ends with a suffix
of ``xenoedge.devices.formats.CUBE_FORMATS`` (``_SpecCube.dat``, ``.hdr``, ``.npy``, ``.npz``), in
sorted order of the path relative to ``folder`` (for a flat folder: file-name order).
Skipped: names starting with "." (hidden and temp files) and ``DARKREF_*``/``WHITEREF_*``
headers, which are references, not scenes.

Labels (naming rule): the mask for ``DIR/<stem><suffix>`` is ``DIR/labels/<stem>.png``,
where ``<suffix>`` is the format suffix (``scan_SpecCube.dat`` -> ``labels/scan.png``,
``scan.npz`` -> ``labels/scan.png``). No such file -> ``Frame.labels`` is None.

Frames: float files give ``kind="reflectance"`` float32; integer files ``kind="raw"``
uint16. ``read_reference("dark"|"white")`` returns ``DARKREF_<name>.hdr`` /
``WHITEREF_<name>.hdr`` beside the last-played ENVI file (Specim layout), as stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from xenoedge.calibration.reflectance import check_reflectance
from xenoedge.devices.camera import Camera, FrameKind, ReferenceKind
from xenoedge.devices.formats import CubeFormat, find_format, read_label_png, supported_suffixes
from xenoedge.devices.formats.envi import DARK_PREFIX, WHITE_PREFIX, is_reference_header, read_envi

from xenoedge.errors import CameraError, CameraExhaustedError, FileFormatError, InvalidCubeError
from xenoedge.sensors import SensorProfile

LABELS_DIR = "labels"
#: Largest difference (nm) tolerated between a file's band centres and the sensor's.
WAVELENGTH_TOLERANCE_NM = 1.0
_UINT16_MAX = int(np.iinfo(np.uint16).max)


def label_path_for(path: str | os.PathLike) -> Path:
    """Where the label PNG of cube file ``path`` lives: ``DIR/labels/<stem>.png``."""
    path = Path(path)
    fmt = find_format(path)
    stem = path.name[: -len(fmt.suffix)] if fmt else path.stem
    return path.parent / LABELS_DIR / f"{stem}.png"


def discover(folder: str | os.PathLike) -> list[Path]:
    """The replay playlist of ``folder``: supported scene files, sorted by relative path."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        fmt = find_format(path)
        if fmt is None or (fmt.name == "envi" and is_reference_header(path)):
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class ReplayCamera(Camera):
    """Plays the cube files of ``folder`` in order (see module docstring), optionally looping.

    Every file must have ``sensor.n_bands`` bands (and, where it stores them, the
    sensor's band centres within ``WAVELENGTH_TOLERANCE_NM``); the spatial size is
    the file's own. ``n_labels``, when given, bounds the ids in label PNGs.
    """

    def __init__(
        self,
        sensor: SensorProfile,
        folder: str | os.PathLike,
        *,
        loop: bool = False,
        camera_id: str = "replay",
        clock_ns: Callable[[], int] = time.monotonic_ns,
        exposure_ms: float = 0.0,
        n_labels: int | None = None,
    ):
        super().__init__(camera_id, sensor, exposure_ms, clock_ns)
        self.folder = Path(folder)
        self.loop = loop
        self.n_labels = n_labels
        self._files: list[Path] = []
        self._position = 0
        self._passes = 0
        self._last: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        """The playlist found at ``open()`` (empty before)."""
        return tuple(self._files)

    def _open(self) -> None:
        kinds = supported_suffixes()
        if not self.folder.is_dir():
            raise CameraError(f"camera {self.camera_id}: replay folder {self.folder} does not exist")
        files = discover(self.folder)
        if not files:
            raise CameraError(
                f"camera {self.camera_id}: replay folder {self.folder} holds no supported file; supported: {kinds}"
            )
        self._files, self._position, self._passes, self._last = files, 0, 0, None

    def _close(self) -> None:
        self._files = []

    def _read(self) -> tuple[np.ndarray, FrameKind, dict]:
        if self._position >= len(self._files):
            if not self.loop:
                raise CameraExhaustedError(
                    f"camera {self.camera_id}: replay of {self.folder} ended after {len(self._files)} files"
                )
            self._position, self._passes = 0, self._passes + 1
        path = self._files[self._position]
        self._position += 1  # a bad file raises once and is skipped on the next read
        self._last = path
        fmt = find_format(path)
        data, wavelengths = self._load(path, fmt)
        data, kind = self._as_frame_data(path, data)
        extras: dict = {
            "wavelengths_nm": wavelengths,
            "labels": self._labels_for(path, data.shape[:2]),
            "source": str(path),
            "format": fmt.name,
            "file_index": self._position - 1,
            "loop_pass": self._passes,
        }
        return data, kind, extras

    def _read_reference(self, kind: ReferenceKind) -> tuple[np.ndarray, FrameKind, dict]:
        scene = self._last or self._files[0]
        prefix = DARK_PREFIX if kind == "dark" else WHITE_PREFIX
        ref = scene.with_name(prefix + scene.name)
        fmt = find_format(scene)
        if fmt is None or fmt.name != "envi" or not ref.is_file():
            raise CameraError(
                f"camera {self.camera_id}: no {kind} reference for {scene} (expected {ref.name} beside it)"
            )
        try:
            data, wavelengths = read_envi(ref, require_wavelengths=False)
        except FileFormatError as e:
            raise CameraError(f"camera {self.camera_id}: {e}") from e
        wavelengths = self._checked_wavelengths(ref, data, wavelengths)
        data, frame_kind = self._as_frame_data(ref, data)
        return data, frame_kind, {"wavelengths_nm": wavelengths, "source": str(ref)}

    # -- helpers ----------------------------------------------------------
    def _load(self, path: Path, fmt: CubeFormat) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, C) data and (C,) float32 nm, checked against the sensor."""
        try:
            data, wavelengths = fmt.read(path)
        except FileFormatError as e:
            raise CameraError(f"camera {self.camera_id}: {e}") from e
        return data, self._checked_wavelengths(path, data, wavelengths)

    def _checked_wavelengths(self, path: Path, data: np.ndarray, wavelengths: np.ndarray | None) -> np.ndarray:
        """The file's band centres (the sensor's if it stores none), after the band checks."""
        n_bands = data.shape[2]
        if n_bands != self.sensor.n_bands:
            raise CameraError(
                f"camera {self.camera_id}: {path} has {n_bands} bands but sensor "
                f"{self.sensor.name!r} has {self.sensor.n_bands}"
            )
        expected = self.sensor.wavelengths()
        if wavelengths is None:
            return expected
        worst = float(np.max(np.abs(wavelengths.astype(np.float64) - expected)))
        if worst > WAVELENGTH_TOLERANCE_NM:
            raise CameraError(
                f"camera {self.camera_id}: {path} band centres differ from sensor "
                f"{self.sensor.name!r} by up to {worst:.2f} nm"
            )
        return wavelengths

    def _as_frame_data(self, path: Path, data: np.ndarray) -> tuple[np.ndarray, FrameKind]:
        """Float -> float32 reflectance; integer -> uint16 raw counts (range checked)."""
        if data.dtype.kind == "f":
            try:
                check_reflectance(data, str(path))
            except InvalidCubeError as e:
                raise CameraError(f"camera {self.camera_id}: {e}") from e
            return data.astype(np.float32, copy=False), "reflectance"
        if data.dtype != np.uint16 and data.size and (data.min() < 0 or data.max() > _UINT16_MAX):
            raise CameraError(
                f"camera {self.camera_id}: {path} holds counts outside 0..{_UINT16_MAX} "
                f"({data.min()}..{data.max()}), not raw uint16 data"
            )
        return data.astype(np.uint16, copy=False), "raw"

    def _labels_for(self, path: Path, shape_hw: tuple[int, ...]) -> np.ndarray | None:
        label_path = label_path_for(path)
        if not label_path.is_file():
            return None
        try:
            labels = read_label_png(label_path, n_labels=self.n_labels)
        except FileFormatError as e:
            raise CameraError(f"camera {self.camera_id}: {e}") from e
        if labels.shape != tuple(shape_hw):
            raise CameraError(
                f"camera {self.camera_id}: {label_path} is {labels.shape[0]}x{labels.shape[1]} "
                f"but {path.name} is {shape_hw[0]}x{shape_hw[1]}"
            )
        return labels


__all__ = ["LABELS_DIR", "ReplayCamera", "discover", "label_path_for"]
