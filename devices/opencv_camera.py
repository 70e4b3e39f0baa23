"""OpenCV ``VideoCapture`` camera: raw mono mosaic frames from a V4L2 device, an image sequence or a video.

Three sources, one capture loop (``cap.read()`` -> raw counts -> checks -> ``Frame``):

- ``v4l2``: a device node (``/dev/video0``) through OpenCV's V4L2 backend, with colour
  conversion off (``CAP_PROP_CONVERT_RGB=0``) so the driver's buffer arrives as is; the pixel
  format (``xenoedge.devices.pixel_formats``) is chosen with ``CAP_PROP_FOURCC``, exposure and gain set
  through ``CAP_PROP_AUTO_EXPOSURE``/``CAP_PROP_EXPOSURE``/``CAP_PROP_GAIN`` where the driver
  has those controls (``controls`` says what happened). Frames carry the driver's buffer time
  (``CAP_PROP_POS_MSEC``, the kernel's monotonic clock) when it reports one.
- ``images``: an OpenCV image sequence (``seq/%05d.png``; ``CAP_IMAGES``), 8- or 16-bit mono
  PNG/TIFF/PGM read unchanged.
- ``video``: a lossless mono video (FFV1 in Matroska, as ``xenoedge.devices.recording`` writes) through
  FFmpeg with ``CAP_PROP_CONVERT_RGB=0`` (gray8/gray16le frames as stored). Lossy codecs are
  refused: they would blend neighbouring mosaic pixels, i.e. different bands.

Frames are ``kind="mosaic_raw"`` (H, W) uint16 counts of the sensor profile, exactly what the
simulated mosaic camera delivers, so the daemon and ``xenoedge.calibration.calibrator.FrameCalibrator``
demosaic them with the profile's pattern (``xenoedge.calibration.mosaic``). ``crosstalk`` is the
sensor's band-crosstalk correction (``xenoedge.calibration.mosaic.load_crosstalk``) for the calibrator.

Errors: ``CameraError`` naming the camera string and what is wrong; ``CameraExhaustedError``
at the end of a file source. A vanished device raises ``CameraError`` on read and on
``open()``, so a caller that closes and reopens (the daemon does) resumes when it is back.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from xenoedge.devices.camera import Camera, FrameKind, FramePacer, ReferenceKind
from xenoedge.devices.pixel_formats import (
    PIXEL_FORMATS,
    PixelFormat,
    decode,
    format_by_code,
    format_by_name,
    fourcc_code,
    fourcc_text,
)

from xenoedge.errors import CameraError, CameraExhaustedError, FileFormatError
from xenoedge.sensors import SensorProfile

SourceMode = Literal["v4l2", "images", "video"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".pgm", ".pnm")
#: Video codecs (lower-case fourcc) that store every pixel exactly.
LOSSLESS_CODECS = ("ffv1", "png", "mpng", "y800", "y16", "grey", "????")
#: FFmpeg pixel formats (CAP_PROP_CODEC_PIXEL_FORMAT) read unchanged with conversion off (verified).
VIDEO_PIXEL_FORMATS = {fourcc_code("Y800"): "gray8", ord("Y") | ord("1") << 8 | 16 << 24: "gray16le"}
#: Raw formats tried, deepest first, when a device opens in a colour format and no fourcc= is given.
RAW_FORMAT_PREFERENCE = ("Y16", "Y12", "Y10", "Y12P", "Y10P", "Y16_BE", "GREY")
#: V4L2_CID_EXPOSURE_ABSOLUTE counts 100 µs steps; V4L2_EXPOSURE_MANUAL is menu entry 1.
V4L2_EXPOSURE_UNITS_PER_MS = 10.0
V4L2_EXPOSURE_MANUAL = 1


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs a WARN line for every failed open; we raise a clearer error, so mute it meanwhile."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def mode_for(target: str) -> SourceMode:
    """How to open a ``file:`` target: ``images`` for a ``%d`` pattern or an image file, else ``video``."""
    if "%" in target or Path(target).suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    return "video"


def sequence_files(pattern: str) -> list[tuple[int, Path]]:
    """(number, path) of the files matching printf ``pattern`` (one ``%d``/``%05d``), sorted by number."""
    specs = re.findall(r"%0?\d*d", pattern)
    if len(specs) != 1 or pattern.count("%") != 1:
        raise CameraError(f"image sequence pattern {pattern!r} must hold exactly one %d (e.g. frames/%05d.png)")
    folder, name = os.path.split(pattern)
    prefix, _, suffix = name.partition(specs[0])
    if "%" in folder:
        raise CameraError(f"image sequence pattern {pattern!r}: the %d must be in the file name")
    directory = Path(folder or ".")
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        middle = entry.name[len(prefix) : len(entry.name) - len(suffix) or None]
        if entry.name.startswith(prefix) and entry.name.endswith(suffix) and middle.isdigit():
            number = int(middle)
            if name % number == entry.name and entry.is_file():
                found.append((number, entry))
    return sorted(found)


def device_node(target: str) -> str:
    """``/dev/videoN`` for ``N`` or a path; other paths are returned as given."""
    return f"/dev/video{int(target)}" if target.isdigit() else target


def frame_fit_problem(shape: tuple[int, ...], sensor: SensorProfile) -> str | None:
    """Why an (H, W) frame cannot be a ``sensor`` mosaic frame, or None when it is one."""
    if len(shape) != 2:
        return f"frame has shape {shape}, a mosaic frame is 2-D (H, W)"
    if tuple(shape) == (sensor.height, sensor.width):
        return None
    h, w = shape
    p = sensor.pattern_size
    if h % p or w % p:
        return (
            f"frame is {h}x{w}, which does not fit the {p}x{p} mosaic pattern of {sensor.name} "
            f"(a window of the sensor is a whole number of {p}x{p} super-pixels)"
        )
    return (
        f"frame is {h}x{w} but {sensor.name} frames are {sensor.height}x{sensor.width}; "
        f"add size={h}x{w} to the camera string if the sensor streams a window"
    )


class OpenCVCamera(Camera):
    """Mono mosaic frames through ``cv2.VideoCapture`` (see the module docstring).

    ``source``: device node or index (``v4l2``), printf pattern or image file (``images``), video
    file (``video``). ``pixel_format``: V4L2 format name to request (``Y16``, ``Y10P`` ...; default:
    whatever the device streams, if it is a raw mono one). ``frame_size``: (H, W) to request from
    a device. ``exposure_ms``/``gain``: device controls to set (None: leave the device's).
    ``fps``: device frame rate, or the pace of a file source (None: as fast as it reads).
    ``shift``: right shift of the counts (a 10-bit sensor sending MSB-aligned ``Y16``: 6).
    ``labels_pattern``: printf path of label PNGs by frame number (recordings from the simulator).
    ``reference_patterns``: ``{"dark"|"white": printf path}`` of recorded reference frames, which
    ``read_reference`` plays (in a loop); a device has none (cap the lens / use a white tile).
    ``media_fps``: frame rate a sequence was recorded at (for ``meta["media_time_ms"]``).
    """

    def __init__(
        self,
        sensor: SensorProfile,
        source: str,
        *,
        mode: SourceMode,
        spec_text: str = "",
        camera_id: str | None = None,
        pixel_format: str | None = None,
        frame_size: tuple[int, int] | None = None,
        exposure_ms: float | None = None,
        gain: float | None = None,
        fps: float | None = None,
        loop: bool = False,
        shift: int = 0,
        labels_pattern: str | None = None,
        reference_patterns: dict[str, str] | None = None,
        media_fps: float | None = None,
        crosstalk: np.ndarray | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ):
        name = camera_id or _default_id(source, mode)
        super().__init__(name, sensor, exposure_ms or 0.0, clock_ns)
        self.source, self.mode, self.spec_text = str(source), mode, spec_text or f"{mode}:{source}"
        if not sensor.mosaic:
            raise self._error(
                f"profile {sensor.name} is not a snapshot-mosaic sensor; OpenCV sources deliver mono mosaic frames"
            )
        if mode not in ("v4l2", "images", "video"):
            raise self._error(f"unknown source mode {mode!r}")
        if not 0 <= shift <= 15:
            raise self._error(f"shift must be 0..15 bits, got {shift}")
        try:
            self.pixel_format: PixelFormat | None = format_by_name(pixel_format) if pixel_format else None
        except CameraError as exc:
            raise self._error(str(exc)) from None
        if mode != "v4l2" and (pixel_format or frame_size or gain is not None):
            raise self._error("pixel format, frame size and gain are device settings (v4l2: cameras only)")
        self.frame_size, self.gain, self.fps, self.loop, self.shift = frame_size, gain, fps, loop, shift
        self.requested_exposure_ms = exposure_ms
        self.labels_pattern, self.media_fps = labels_pattern, media_fps
        self.reference_patterns = dict(reference_patterns or {})
        self._reference_caps: dict[str, cv2.VideoCapture] = {}
        self.crosstalk = None if crosstalk is None else np.asarray(crosstalk, dtype=np.float32)
        if self.crosstalk is not None and self.crosstalk.shape != (sensor.n_bands,) * 2:
            raise self._error(f"crosstalk matrix must be {(sensor.n_bands,) * 2}, got {self.crosstalk.shape}")
        self.controls: dict[str, str] = {}
        self._pacer = FramePacer(fps if mode != "v4l2" else None, clock_ns, sleep)
        self._cap: cv2.VideoCapture | None = None
        self._format: PixelFormat | None = None
        self._first_number = 0
        self._position = 0  # frames read in this pass
        self._passes = 0
        self._skip_to: int | None = None

    # -- lifecycle --------------------------------------------------------
    def _error(self, problem: str) -> CameraError:
        return CameraError(f"camera {self.spec_text}: {problem}")

    def _open(self) -> None:
        self._position, self._passes, self._skip_to = 0, 0, None
        self._pacer.reset()
        if self.mode == "v4l2":
            self._open_device()
        else:
            self._open_file()

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        for cap in self._reference_caps.values():
            cap.release()
        self._reference_caps.clear()

    def _open_file(self) -> None:
        path = Path(self.source)
        if self.mode == "images":
            if "%" in self.source:
                files = sequence_files(self.source)
                if not files:
                    where = "" if path.parent.is_dir() else f" (folder {path.parent} does not exist)"
                    raise self._error(f"no image file matches the sequence pattern {self.source}{where}")
                self._first_number = files[0][0]
            elif not path.is_file():
                raise self._error(f"no such image file {path}")
            with _quiet_opencv():
                cap = cv2.VideoCapture(self.source, cv2.CAP_IMAGES)
        else:
            if not path.is_file():
                raise self._error(f"no such video file {path}" if not path.is_dir() else f"{path} is a folder")
            with _quiet_opencv():  # FFmpeg also warns that conversion is off, which is the point
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
        if not cap.isOpened():
            what = "an image sequence" if self.mode == "images" else "a video (not a video file?)"
            raise self._error(f"OpenCV cannot open {self.source} as {what}")
        if self.mode == "video":
            self._check_video(cap)
        self._cap = cap

    def _check_video(self, cap: cv2.VideoCapture) -> None:
        codec = fourcc_text(int(cap.get(cv2.CAP_PROP_FOURCC))).strip().lower()
        pixel = int(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT))
        if pixel not in VIDEO_PIXEL_FORMATS:
            cap.release()
            raise self._error(
                f"unsupported pixel format {fourcc_text(pixel)!r} (codec {codec!r}) in {self.source}: "
                f"a mosaic video must be 1-channel {' or '.join(VIDEO_PIXEL_FORMATS.values())}"
            )
        if codec not in LOSSLESS_CODECS:
            cap.release()
            raise self._error(
                f"codec {codec!r} of {self.source} is not lossless; a mosaic frame needs exact pixels "
                f"(lossless codecs: {', '.join(c for c in LOSSLESS_CODECS if c != '????')}, raw video)"
            )

    def _open_device(self) -> None:
        node = device_node(self.source)
        if not os.path.exists(node):
            raise self._error(f"no such device {node} (not plugged in, or gone)")
        if not stat.S_ISCHR(os.stat(node).st_mode):
            raise self._error(f"{node} is not a device node (a V4L2 camera is a character device like /dev/video0)")
        with _quiet_opencv():
            cap = cv2.VideoCapture(node, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise self._error(
                f"OpenCV's V4L2 backend cannot open {node}: not a video capture device, busy, or no permission"
            )
        self._cap = cap
        try:
            self._configure_device(cap, node)
        except CameraError:
            self._close()
            raise

    def _configure_device(self, cap: cv2.VideoCapture, node: str) -> None:
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # the driver's buffer as is: no colour conversion
        if self.pixel_format is not None and not cap.set(cv2.CAP_PROP_FOURCC, self.pixel_format.fourcc):
            raise self._error(
                f"{node} refuses pixel format {self.pixel_format.name}; "
                f"list what it offers with `v4l2-ctl -d {node} --list-formats-ext`"
            )
        if self.frame_size is not None:
            h, w = self.frame_size
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        streaming = int(cap.get(cv2.CAP_PROP_FOURCC))
        fmt = format_by_code(streaming)
        if fmt is None and self.pixel_format is None:  # OpenCV picked a colour format: look for a raw one
            for name in RAW_FORMAT_PREFERENCE:
                if cap.set(cv2.CAP_PROP_FOURCC, PIXEL_FORMATS[name].fourcc):
                    fmt = format_by_code(int(cap.get(cv2.CAP_PROP_FOURCC)))
                    if fmt is not None:
                        break
        if fmt is None:
            raise self._error(
                f"unsupported pixel format {fourcc_text(streaming)!r} on {node}: not a raw mono format; "
                f"set fourcc= to one of GREY, Y10, Y12, Y16, Y16_BE, Y10P, Y12P that the device offers"
            )
        self._format = fmt
        size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        problem = frame_fit_problem(size, self.sensor)
        if problem:
            raise self._error(f"{node} streams {fmt.name}: {problem}")
        if self.fps is not None:
            ok = cap.set(cv2.CAP_PROP_FPS, self.fps)
            got = cap.get(cv2.CAP_PROP_FPS)
            self.controls["fps"] = f"{got:g} frames/s" if ok and got > 0 else "not settable: the device's own rate"
        if self.requested_exposure_ms is not None:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)
            ok = cap.set(cv2.CAP_PROP_EXPOSURE, self.requested_exposure_ms * V4L2_EXPOSURE_UNITS_PER_MS)
            got = cap.get(cv2.CAP_PROP_EXPOSURE)
            if ok and got > 0:
                self.exposure_ms = got / V4L2_EXPOSURE_UNITS_PER_MS
                self.controls["exposure"] = f"{self.exposure_ms:g} ms"
            else:
                self.controls["exposure"] = "not supported by the device: frames use its own exposure"
        else:  # leave the device's exposure, but say what it is: calibration needs it fixed
            got, auto = cap.get(cv2.CAP_PROP_EXPOSURE), cap.get(cv2.CAP_PROP_AUTO_EXPOSURE)
            if got > 0:
                self.exposure_ms = got / V4L2_EXPOSURE_UNITS_PER_MS
            state = f"{self.exposure_ms:g} ms, the device's setting" if got > 0 else "unknown (no exposure control)"
            if auto >= 0 and round(auto) != V4L2_EXPOSURE_MANUAL:
                state += "; auto exposure is on: set exposure= for frames that calibrate"
            self.controls["exposure"] = state
        if self.gain is not None:
            ok = cap.set(cv2.CAP_PROP_GAIN, self.gain)
            got = cap.get(cv2.CAP_PROP_GAIN)
            self.controls["gain"] = f"{got:g} (device units)" if ok and got >= 0 else "not supported by the device"
        self.controls["pixel_format"] = f"{fmt.name} ({fmt.description})"

    # -- frames -----------------------------------------------------------
    def _read(self) -> tuple[np.ndarray, FrameKind, dict]:
        self._pacer.wait()
        if self._skip_to is not None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, self._skip_to)
            self._position, self._skip_to = self._skip_to, None
        if self.mode == "images":  # OpenCV warns about the file after the last; the end is not an error
            with _quiet_opencv():
                ok, image = self._cap.read()
        else:
            ok, image = self._cap.read()
        if not ok or image is None:
            return self._no_frame()
        position = self._position
        self._position += 1
        what = f"frame {position} of {self.source}"
        counts = self._counts(image, what)
        problem = frame_fit_problem(counts.shape, self.sensor)
        if problem:
            raise self._error(f"{what}: {problem}")
        extras: dict = {"source": self.source, "loop_pass": self._passes, "source_frame": position}
        if self.mode == "v4l2":
            stamp_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            if stamp_ms > 0:
                extras["timestamp_us"] = round(stamp_ms * 1000)
            extras["timestamp_source"] = "device" if stamp_ms > 0 else "host"
            extras["pixel_format"] = self._format.name
        else:
            media_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            if media_ms < 0 and self.media_fps:
                media_ms = position * 1000.0 / self.media_fps
            if media_ms >= 0:
                extras["media_time_ms"] = media_ms
            extras["timestamp_source"] = "host"
            labels = self._labels(position)
            if labels is not None:
                extras["labels"] = labels
        if self.controls:
            extras["controls"] = dict(self.controls)
        return counts, "mosaic_raw", extras

    def _read_reference(self, kind: ReferenceKind) -> tuple[np.ndarray, FrameKind, dict]:
        pattern = self.reference_patterns.get(kind)
        if pattern is None:
            return super()._read_reference(kind)
        for attempt in range(2):  # at the end of the references, start them again
            cap = self._reference_caps.get(kind)
            if cap is None:
                if not sequence_files(pattern):
                    raise self._error(f"no {kind} reference frame matches {pattern}")
                with _quiet_opencv():
                    cap = cv2.VideoCapture(pattern, cv2.CAP_IMAGES)
                if not cap.isOpened():
                    raise self._error(f"OpenCV cannot open the {kind} references {pattern}")
                self._reference_caps[kind] = cap
            with _quiet_opencv():
                ok, image = cap.read()
            if ok and image is not None:
                break
            cap.release()
            del self._reference_caps[kind]
            if attempt:
                raise self._error(f"cannot read a {kind} reference frame from {pattern}")
        what = f"{kind} reference frame of {pattern}"
        counts = self._counts(image, what)
        problem = frame_fit_problem(counts.shape, self.sensor)
        if problem:
            raise self._error(f"{what}: {problem}")
        return counts, "mosaic_raw", {"source": pattern}

    def _no_frame(self) -> tuple[np.ndarray, FrameKind, dict]:
        position = self._position
        if self.mode == "v4l2":
            node = device_node(self.source)
            if not os.path.exists(node):
                raise self._error(
                    f"device {node} vanished (unplugged?) after {position} frames; reopen when it is back"
                )
            raise self._error(f"no frame from {node} (timeout or stream error) after {position} frames")
        if self.mode == "images" and "%" in self.source:
            pending = Path(self.source % (self._first_number + position))
            if pending.is_file():
                self._skip_to = position + 1  # this file raises once and is skipped on the next read
                raise self._error(f"OpenCV cannot decode {pending} (frame {position}); skipping it")
        if self.loop and position > 0:
            self._close()
            self._open_file()
            self._position, self._passes = 0, self._passes + 1
            self._pacer.reset()  # this frame already waited its turn
            return self._read()
        raise CameraExhaustedError(f"camera {self.spec_text}: {self.source} ended after {position} frames")

    def _counts(self, image: np.ndarray, what: str) -> np.ndarray:
        """(H, W) uint16 counts from what OpenCV returned."""
        if self.mode == "v4l2":
            h, w = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            try:
                counts = decode(image, self._format, h, w, what)
            except CameraError as exc:
                raise self._error(str(exc)) from None
        else:
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[:, :, 0]
            if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
                channels = 1 if image.ndim == 2 else image.shape[2]
                raise self._error(
                    f"{what}: unsupported pixel format: {channels}-channel {image.dtype} image; "
                    "a mosaic frame is a 1-channel 8- or 16-bit mono image"
                )
            counts = image.astype(np.uint16, copy=False)
        if self.shift:
            counts = counts >> np.uint16(self.shift)
        return counts

    def _labels(self, position: int) -> np.ndarray | None:
        if not self.labels_pattern:
            return None
        number = self._first_number + position if self.mode == "images" else position
        path = Path(self.labels_pattern % number)
        if not path.is_file():
            return None
        from xenoedge.devices.formats import read_label_png

        try:
            labels = read_label_png(path)
        except FileFormatError as exc:
            raise self._error(str(exc)) from None
        if labels.shape != self.sensor.cube_shape[:2]:
            raise self._error(f"{path} is {labels.shape}, the {self.sensor.name} cube is {self.sensor.cube_shape[:2]}")
        return labels


def _default_id(source: str, mode: SourceMode) -> str:
    """``v4l2-video0``; ``file-<folder>`` for a sequence or a recording's ``frames.mkv``, else ``file-<stem>``."""
    if mode == "v4l2":
        return f"v4l2-{Path(device_node(source)).name}"
    path = Path(source).absolute()
    in_folder = "%" in path.name or path.name == "frames.mkv"
    return f"file-{path.parent.name if in_folder else path.stem}"


@dataclass(frozen=True)
class DeviceProbe:
    """What ``probe_v4l2_devices`` found at one device node."""

    node: str
    usable: bool
    detail: str


def probe_v4l2_devices(pattern: str = "/dev/video*") -> list[DeviceProbe]:
    """Every V4L2 node matching ``pattern``, opened once through OpenCV to see whether it streams raw mono."""
    import glob

    def number(node: str) -> tuple[int, str]:
        digits = re.sub(r"\D", "", Path(node).name)
        return (int(digits) if digits else -1, node)

    found = []
    for node in sorted(glob.glob(pattern), key=number):
        if not stat.S_ISCHR(os.stat(node).st_mode):
            found.append(DeviceProbe(node, False, "not a character device"))
            continue
        with _quiet_opencv():
            cap = cv2.VideoCapture(node, cv2.CAP_V4L2)
        try:
            if not cap.isOpened():
                found.append(DeviceProbe(node, False, "not a capture device, busy, or no permission"))
                continue
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            code = int(cap.get(cv2.CAP_PROP_FOURCC))
            size = f"{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}x{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}"
            fmt = format_by_code(code)
            if fmt is None:
                detail = f"streams {fourcc_text(code)!r} {size} (colour/compressed); try fourcc=Y16 or another raw mono"
                found.append(DeviceProbe(node, False, detail))
            else:
                found.append(DeviceProbe(node, True, f"streams {fmt.name} {size}"))
        finally:
            cap.release()
    return found


__all__ = [
    "IMAGE_SUFFIXES",
    "LOSSLESS_CODECS",
    "DeviceProbe",
    "OpenCVCamera",
    "device_node",
    "frame_fit_problem",
    "mode_for",
    "probe_v4l2_devices",
    "sequence_files",
]
