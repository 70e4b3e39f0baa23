"""Where the daemon's results go: any object with ``send(kind: str, **fields)``.

The daemon calls ``send`` from its one worker thread only, in this order: one ``"hello"``
when ready, then ``"mask"`` per frame, ``"status"`` every ``status_interval_s``, ``"error"``
whenever something goes wrong; ``flush()`` (when the sink has it) before exit. Arrays passed to
``send`` are the daemon's buffers, valid only during the call: a sink that keeps one copies it.
A sink must accept (and may ignore) fields it does not know. A sink that raises does not stop
the daemon (the failure is counted as a ``sink`` error); a slow sink makes the capture queue
drop its oldest frames, which ``status`` reports as ``dropped``. ``send`` may return False when
the event did not reach its destination (a link down or full: the mask is lost); the daemon counts
masks *delivered* (no exception, not False) apart from masks *made*. A sink that cannot work at
all (a folder that is a file, a missing serial port) raises ``XenoedgeError`` when it is built.

Fields (see docs/daemon.md for the full table):

- ``hello``: model_id, model_name, model_version, sensor, sensor_signature, camera_id, engine,
  width, height, n_classes, labels (list of {id, name, color});
- ``mask``: frame_index, timestamp_us, classes ((H, W) uint8), n_classes, model_id,
  confidence ((H, W) float32 or None), latency_ms, dsc (float or None; only with scoring);
- ``status``: fps, frames, dropped, uptime_s, errors (total), error_counts ({code: n}), model_id,
  queue_depth, mean_dsc (None unless scoring), masks_delivered, masks_lost, link_state,
  link_down_s;
- ``error``: code (``camera``, ``frame``, ``sink``, ``engine``, ``references``), message,
  frame_index (or None).

Sinks by spec (``sink_from_spec``): ``null``, ``collect``, ``png:DIR[:EVERY]``; other modules
(the wire-protocol links) add theirs to ``SINK_KINDS``.

``RecentFrames`` keeps the picture bands of a camera's last frames so that a picture of a mask can
show the frame under it (``PngSink`` and the host ``Receiver`` take its ``rgb`` as ``frame_rgb``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from xenoedge.errors import UnknownNameError, XenoedgeError

__all__ = ["SINK_KINDS", "CollectingSink", "NullSink", "PngSink", "RecentFrames", "Sink", "sink_from_spec"]


class Sink(Protocol):
    def send(self, kind: str, **fields: Any) -> None: ...


class NullSink:
    """Discards everything (counts what it got per kind)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def send(self, kind: str, **fields: Any) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


class CollectingSink:
    """Keeps every event as ``(kind, fields)`` with arrays copied (for tests and the demo)."""

    def __init__(self, on_send: Callable[[str, dict], None] | None = None) -> None:
        self.events: list[tuple[str, dict]] = []
        self.flushed = 0
        self._on_send = on_send

    def send(self, kind: str, **fields: Any) -> None:
        kept = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in fields.items()}
        self.events.append((kind, kept))
        if self._on_send is not None:
            self._on_send(kind, kept)

    def flush(self) -> None:
        self.flushed += 1

    def of(self, kind: str) -> list[dict]:
        """The fields of every event of ``kind``, in order."""
        return [fields for k, fields in self.events if k == kind]


class PngSink:
    """Writes the 1st, (1+every)-th, ... mask received as the picture ``DIR/mask_<frame index:06d>.png``:
    a title (model, frame), the mask in the labels' colours, or the frame and the mask over it when
    ``frame_rgb(frame_index)`` gives the frame's (H, W, 3) uint8 pseudo-RGB (``RecentFrames.rgb``),
    and a legend of the class names and colours of the HELLO ``labels`` (``xenoedge.xeno.previews.mask_picture``)."""

    def __init__(
        self, folder: str | Path, *, every: int = 1, frame_rgb: Callable[[int], np.ndarray | None] | None = None
    ) -> None:
        if every < 1:
            raise XenoedgeError(f"png sink: every must be >= 1, got {every}")
        self.folder = Path(folder)
        _check_folder(self.folder)
        self.every = every
        self.frame_rgb = frame_rgb
        self.written = 0
        self.masks = 0
        self._colors: np.ndarray | None = None
        self._names: dict[int, str] = {}
        self._model = ""

    def send(self, kind: str, **fields: Any) -> None:
        if kind == "hello":
            labels = fields.get("labels") or []
            colors = np.zeros((max(256, len(labels)), 3), dtype=np.uint8)
            for label in labels:
                colors[int(label["id"])] = label["color"]
            self._colors = colors
            self._names = {int(label["id"]): str(label.get("name", label["id"])) for label in labels}
            self._model = " ".join(str(fields[k]) for k in ("model_name", "model_version") if fields.get(k))
            self.folder.mkdir(parents=True, exist_ok=True)
        elif kind == "mask":
            self.masks += 1
            if (self.masks - 1) % self.every:
                return
            from xenoedge.devices.formats import write_rgb_png
            from xenoedge.xeno.previews import mask_picture

            classes, index = fields["classes"], fields["frame_index"]
            n = max(int(fields.get("n_classes") or 0), int(classes.max(initial=0)) + 1)
            colors = (self._colors if self._colors is not None else _gray_colors())[:n]
            names = [self._names.get(i, f"class {i}") for i in range(n)]
            rgb = self.frame_rgb(index) if self.frame_rgb is not None else None
            if rgb is not None and rgb.shape[:2] != classes.shape:
                rgb = None
            title = f"{self._model or 'mask'}  frame {index}"
            write_rgb_png(self.folder / f"mask_{index:06d}.png", mask_picture(classes, colors, names, title, rgb=rgb))
            self.written += 1


def _check_folder(folder: Path) -> None:
    """Make ``folder`` now, so that a sink that cannot write is an error at start, not lost masks."""
    import os

    if folder.exists() and not folder.is_dir():
        raise XenoedgeError(f"png sink: {folder} is a file, not a folder; give a folder for the mask pictures")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XenoedgeError(f"png sink: cannot create {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise XenoedgeError(f"png sink: {folder} is not writable")


def _gray_colors() -> np.ndarray:
    return np.repeat((np.arange(256, dtype=np.uint16) * 37 % 256).astype(np.uint8)[:, None], 3, axis=1)


class RecentFrames:
    """Keeps the three picture bands (``xenoedge.xeno.previews.rgb_band_indices``) of ``camera``'s last
    ``keep`` frames by frame index, so that a mask's picture can show its frame. It wraps the
    camera's ``read`` on the instance (the camera stays itself: the daemon checks its type).
    Costs a copy of 3 bands per frame (~1 ms at 480x640); ``rgb`` stretches them when asked."""

    def __init__(self, camera: Any, keep: int = 32) -> None:
        from collections import OrderedDict

        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._keep = keep
        self._sensor = camera.sensor
        self._read = camera.read
        camera.read = self._read_and_keep

    def _read_and_keep(self) -> Any:
        frame = self._read()
        try:
            self._frames[int(frame.index)] = self._bands(frame)
            while len(self._frames) > self._keep:
                self._frames.popitem(last=False)
        except Exception:  # a frame that cannot be pictured is still a frame for the daemon
            pass
        return frame

    def _bands(self, frame: Any) -> np.ndarray:
        from xenoedge.xeno.previews import rgb_band_indices

        data, sensor = frame.data, self._sensor
        bands = list(rgb_band_indices(frame.wavelengths_nm if data.ndim == 3 else sensor.wavelengths()))
        if data.ndim == 3:
            return data[..., bands].copy()
        h, w, _ = sensor.cube_shape  # a raw mosaic: each band's pixels, one per pattern cell
        p = sensor.pattern_size
        where = {band: (r, c) for r, row in enumerate(sensor.mosaic or ()) for c, band in enumerate(row)}
        return np.stack([data[r : h * p : p, c : w * p : p] for r, c in (where[b] for b in bands)], axis=-1)

    def rgb(self, frame_index: int) -> np.ndarray | None:
        """(H, W, 3) uint8 of a kept frame (each band stretched between its 1st and 99th
        percentile: raw counts are not calibrated here), or None when it is no longer kept."""
        bands = self._frames.get(int(frame_index))
        if bands is None:
            return None
        sample = bands[::4, ::4].reshape(-1, 3).astype(np.float32)
        lo, hi = np.percentile(sample, 1, axis=0), np.percentile(sample, 99, axis=0)
        scaled = (bands.astype(np.float32) - lo) / np.maximum(hi - lo, 1e-6)
        return (np.clip(scaled, 0.0, 1.0) ** (1 / 1.6) * 255).astype(np.uint8)


def _png(arg: str) -> PngSink:
    folder, _, every = arg.rpartition(":") if arg.rsplit(":", 1)[-1].isdigit() else (arg, "", "1")
    if not folder:
        raise XenoedgeError("png sink needs a folder: png:DIR or png:DIR:EVERY")
    return PngSink(folder, every=int(every))


class LinkSink:
    """The wire protocol over an ``xenoedge.edge.links`` link: what a device sends to its host.

    ``wait_for_port``: a serial port that does not exist yet is waited for (link state
    ``waiting``) instead of refused at start (``NoSuchPortError`` listing the ports that exist)."""

    def __init__(self, link_spec: str, *, wait_for_port: bool = False):
        from xenoedge.edge.links import open_link, parse_kind
        from xenoedge.edge.protocol.sink import ProtocolSink

        self.spec = link_spec
        options = {"wait_for_port": wait_for_port} if parse_kind(link_spec)[0] == "serial" else {}
        self.link = open_link(link_spec, **options)
        self.protocol = ProtocolSink(self.link)

    def send(self, kind: str, **fields: Any) -> bool:
        return self.protocol.send(kind, **fields)

    def flush(self) -> None:
        self.protocol.flush()

    def close(self) -> None:
        self.protocol.flush()
        self.link.close()


def _link(kind: str) -> Callable[..., LinkSink]:
    return lambda arg, **options: LinkSink(f"{kind}:{arg}" if arg else kind, **options)


#: Sink kind -> factory(argument, **options): local pictures, or the wire protocol over a link
#: (docs/links.md). Options (``wait_for_port``) reach the link factories only.
SINK_KINDS: dict[str, Callable[..., Any]] = {
    "null": lambda arg, **_: NullSink(),
    "collect": lambda arg, **_: CollectingSink(),
    "png": lambda arg, **_: _png(arg),
    "serial": _link("serial"),
    "tcp": _link("tcp"),
    "file": _link("file"),
    "pty": _link("pty"),
}


def sink_from_spec(spec: str, *, wait_for_port: bool = False) -> Any:
    """A sink for ``spec`` (``kind[:argument]``), e.g. ``null``, ``png:/tmp/masks:10``; checked now
    (a PNG folder that cannot be made, a serial port that does not exist raise ``XenoedgeError``)."""
    kind, _, arg = spec.partition(":")
    if kind not in SINK_KINDS:
        raise UnknownNameError("output sink", kind, sorted(SINK_KINDS))
    return SINK_KINDS[kind](arg, wait_for_port=wait_for_port)
