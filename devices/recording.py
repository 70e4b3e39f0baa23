"""Record a camera's mosaic frames as a 16-bit PNG sequence or a lossless FFV1 video, for ``file:`` cameras.

A recording folder holds the frames (``%05d.png`` or ``frames.mkv``), the ground-truth label
PNGs when the camera knows them (``labels/%05d.png``, cube resolution, as the simulator gives
them), optionally dark and white reference frames (``dark/%05d.png``, ``white/%05d.png``, from a
camera that can capture them, such as the simulator) and ``camera.json``, which names the
sensor profile, frame size, frame rate and the camera string it came from.
``file:FOLDER/%05d.png`` and ``file:FOLDER/frames.mkv`` take the profile, size, labels and
references from that file, so a recording plays back without options.

Verified here (tests/devices/test_opencv_camera.py): uint16 PNG frames and FFV1
gray16le Matroska frames read back through ``cv2.VideoCapture`` bit-exact. OpenCV's FFV1 writer
drops the last column of odd-width frames, so videos need an even width (refused otherwise).

Every file is written atomically; ``camera.json`` last, so a folder without it is an
interrupted recording.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from xenoedge.devices.camera import Camera
from xenoedge.devices.formats.label_png import png_bytes

from xenoedge.atomic import atomic_write, replace_synced, temp_path_beside
from xenoedge.errors import CameraError, FileFormatError

RECORDING_FILE = "camera.json"
RECORDING_FORMAT = "xenoedge-camera-recording"
FRAME_PATTERN = "%05d.png"
LABEL_PATTERN = "labels/%05d.png"
VIDEO_NAME = "frames.mkv"
#: Reference frames (dark with the lens capped, white tile) beside the scene frames.
REFERENCE_PATTERNS = {"dark": "dark/%05d.png", "white": "white/%05d.png"}


class FolderNotEmptyError(FileFormatError):
    """The output folder holds files and ``overwrite`` was not given."""


def _frame_counts(camera: Camera, frame, what: str) -> np.ndarray:
    """(H, W) uint16 counts of a frame, or a ``CameraError`` saying why it cannot be recorded."""
    data = np.asarray(frame.data)
    sensor = camera.sensor
    if data.ndim != 2 or data.dtype.kind not in "ui":
        raise CameraError(
            f"camera {camera.camera_id}: {what} is {data.dtype} {data.shape}; a recording holds 2-D "
            f"mosaic/mono raw frames ({sensor.name} is {'a mosaic' if sensor.mosaic else 'not a mosaic'} "
            "sensor; use `xenoedge simulate` for cube files)"
        )
    if data.size and (int(data.min()) < 0 or int(data.max()) > 65535):
        raise CameraError(f"camera {camera.camera_id}: {what} holds counts outside 0..65535")
    return data.astype(np.uint16, copy=False)


def _write_png(path: Path, data: np.ndarray) -> None:
    atomic_write(path, lambda f: f.write(png_bytes(data, path)))


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileFormatError(out, "exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    old = [p for p in out.iterdir() if not p.name.startswith(".")]
    if old and not overwrite:
        raise FolderNotEmptyError(out, f"folder is not empty ({len(old)} entries); choose another or overwrite it")
    if overwrite:  # drop what an earlier recording left, so a shorter one does not inherit its frames
        (out / RECORDING_FILE).unlink(missing_ok=True)
        for pattern in ("[0-9]*.png", "labels/[0-9]*.png", "dark/[0-9]*.png", "white/[0-9]*.png", VIDEO_NAME):
            for stale in out.glob(pattern):
                stale.unlink()


class _VideoSink:
    """FFV1 gray16le Matroska through ``cv2.VideoWriter``, written beside the target and renamed when done."""

    def __init__(self, path: Path, fps: float, shape: tuple[int, int]):
        h, w = shape
        if w % 2:
            raise CameraError(
                f"{path}: OpenCV's FFV1 writer drops the last column of odd-width frames ({h}x{w}); "
                "record a PNG sequence instead, or an even width"
            )
        self.path = path
        self._tmp_ctx = temp_path_beside(path, suffix=".mkv")
        self.tmp = self._tmp_ctx.__enter__()
        params = [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0]
        fourcc = cv2.VideoWriter_fourcc(*"FFV1")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_FFMPEG, fourcc, fps, (w, h), params)
        if not self.writer.isOpened():
            self.abort()
            raise CameraError(f"{path}: OpenCV cannot write an FFV1 16-bit video here (FFmpeg backend missing?)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def finish(self) -> None:
        self.writer.release()
        replace_synced(self.tmp, self.path)
        self._tmp_ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self.writer.release()
        self._tmp_ctx.__exit__(None, None, None)


def record(
    camera: Camera,
    out: str | os.PathLike,
    frames: int,
    *,
    video: bool = False,
    fps: float = 10.0,
    camera_text: str = "",
    overwrite: bool = False,
    references: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Read ``frames`` frames from ``camera`` (opened here if needed) into folder ``out``.

    Frames must be (H, W) integer mosaic/mono frames up to 16 bit (written as uint16).
    ``fps`` is the rate stored for playback timing. ``references``: also record that many dark
    and white frames (``camera.read_reference``). Returns what ``camera.json`` holds.
    """
    if frames < 1:
        raise CameraError(f"record needs at least one frame, got {frames}")
    if fps <= 0:
        raise CameraError(f"record fps must be positive, got {fps}")
    if references < 0:
        raise CameraError(f"record references must be >= 0, got {references}")
    out = Path(out)
    _prepare_folder(out, overwrite)
    sensor = camera.sensor
    opened_here = not camera.is_open
    video_sink: _VideoSink | None = None
    has_labels = False
    try:
        camera.open()
        for i in range(frames):
            frame = camera.read()
            data = _frame_counts(camera, frame, f"frame {i}")
            if video:
                if video_sink is None:
                    video_sink = _VideoSink(out / VIDEO_NAME, fps, data.shape)
                video_sink.write(data)
            else:
                _write_png(out / (FRAME_PATTERN % i), data)
            if frame.labels is not None:
                from xenoedge.devices.formats import write_label_png

                (out / "labels").mkdir(exist_ok=True)
                write_label_png(out / (LABEL_PATTERN % i), frame.labels)
                has_labels = True
            if progress is not None:
                progress(i + 1)
        if video_sink is not None:
            video_sink.finish()
            video_sink = None
        for kind, pattern in REFERENCE_PATTERNS.items():
            for i in range(references):
                (out / kind).mkdir(exist_ok=True)
                _write_png(out / (pattern % i), _frame_counts(camera, camera.read_reference(kind), f"{kind} frame {i}"))
    finally:
        if video_sink is not None:
            video_sink.abort()
        if opened_here:
            camera.close()
    info = {
        "format": RECORDING_FORMAT,
        "version": 1,
        "camera": camera_text or camera.camera_id,
        "camera_id": camera.camera_id,
        "profile": sensor.name,
        "size": f"{sensor.height}x{sensor.width}",
        "signature": sensor.signature,
        "frames": frames,
        "fps": fps,
        "exposure_ms": camera.exposure_ms,
        "frames_file": VIDEO_NAME if video else FRAME_PATTERN,
        "labels": LABEL_PATTERN if has_labels else None,
        "references": dict(REFERENCE_PATTERNS) if references else None,
    }
    atomic_write(out / RECORDING_FILE, lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    return info


def read_recording_info(folder: str | os.PathLike) -> dict | None:
    """``camera.json`` of a recording folder, or None when there is none; raises on a corrupt one."""
    path = Path(folder) / RECORDING_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(path, f"not a readable recording description: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != RECORDING_FORMAT:
        raise FileFormatError(path, f"not a {RECORDING_FORMAT} file")
    return info


@dataclass(frozen=True)
class RecordingDefaults:
    """What a ``file:`` camera takes from the ``camera.json`` beside its target (all empty without one).

    ``options``: profile and size; ``labels``: printf path of the label PNGs; ``references``:
    kind -> printf path of the reference frames; ``fps``/``exposure_ms``: as recorded.
    """

    options: dict[str, str] = field(default_factory=dict)
    labels: str | None = None
    references: dict[str, str] = field(default_factory=dict)
    fps: float | None = None
    exposure_ms: float | None = None


def recording_defaults(target: str) -> RecordingDefaults:
    """The ``RecordingDefaults`` for a ``file:`` target inside a recording folder."""
    folder = Path(target).parent
    info = read_recording_info(folder)
    if info is None:
        return RecordingDefaults()
    return RecordingDefaults(
        options={k: str(info[k]) for k in ("profile", "size") if info.get(k)},
        labels=str(folder / info["labels"]) if info.get("labels") else None,
        references={k: str(folder / v) for k, v in (info.get("references") or {}).items()},
        fps=float(info["fps"]) if info.get("fps") else None,
        exposure_ms=float(info["exposure_ms"]) if info.get("exposure_ms") is not None else None,
    )


__all__ = [
    "FRAME_PATTERN",
    "LABEL_PATTERN",
    "RECORDING_FILE",
    "REFERENCE_PATTERNS",
    "VIDEO_NAME",
    "FolderNotEmptyError",
    "RecordingDefaults",
    "read_recording_info",
    "record",
    "recording_defaults",
]
