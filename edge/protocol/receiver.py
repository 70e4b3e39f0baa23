"""Host side of ``xenoedge listen``: decode a byte stream, write mask pictures, keep live stats.

A mask picture (``mask_<frame index:08d>.png``) is titled with the model and frame, shows the
mask in the class colours and a legend of class names, colours and shares of the mask; names and
colours are the ``labels`` of the device's HELLO (``xenoedge.xeno.previews.mask_picture``, OpenCV only).

>>> import numpy as np
>>> from xenoedge.edge.protocol import PacketEncoder, PacketType, mask_payload
>>> enc = PacketEncoder(clock_us=iter(range(0, 10**6, 10**5)).__next__)  # device clock: 10 fps
>>> mask = np.zeros((4, 6), np.uint8)
>>> frames = [enc.encode(PacketType.MASK, mask_payload(mask, frame_index=i, model_id=bytes(16), n_classes=2))
...           for i in range(5)]
>>> stats = run_listen(frames, Receiver(None))  # out_dir=None: stats only, no pictures
>>> stats.masks, stats.fps, stats.crc_errors
(5, 10.0, 0)
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xenoedge.devices.formats.label_png import write_rgb_png
from xenoedge.edge.protocol.decoder import StreamDecoder
from xenoedge.edge.protocol.packets import Packet, PacketType, ProtocolError

FPS_WINDOW = 30  # masks over which fps is measured (device timestamps)


def default_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB: black background, then well-separated hues (deterministic)."""
    hues = (np.arange(n) * 0.618034) % 1.0
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hues[:, None] * 6.0) % 6.0
    rgb = 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0) * 0.85  # HSV with s = 0.85, v = 1
    colors = np.round(rgb * 255).astype(np.uint8)
    colors[:1] = 0
    return colors


@dataclass
class ReceiverStats:
    """Live numbers for the ``listen`` display; byte sizes are MASK payload bytes."""

    packets: int = 0
    masks: int = 0
    fps: float = 0.0  # masks per second by the device's timestamps, over the last 30 masks
    last_mask_bytes: int = 0
    mean_mask_bytes: float = 0.0
    images_written: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    payload_errors: int = 0  # CRC-valid packets whose payload did not parse
    sequence_gaps: int = 0
    missing_packets: int = 0  # packets lost or damaged, by sequence numbers
    device_errors: int = 0  # ERROR packets received
    bytes: int = 0
    device: dict[str, Any] | None = None  # last HELLO
    status: dict[str, Any] | None = None  # last STATUS, as a dict
    last_error: str | None = None

    def line(self) -> str:
        """One line for a terminal."""
        return (
            f"masks {self.masks}  fps {self.fps:.1f}  bytes/mask {self.last_mask_bytes}"
            f" (mean {self.mean_mask_bytes:.0f})"
            f"  crc errors {self.crc_errors}  framing errors {self.framing_errors}  drops {self.missing_packets}"
            f"  images {self.images_written}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Receiver:
    """Consumes packets; every ``every``-th mask (the first included) is written as the picture
    ``out_dir/mask_<frame_index:08d>.png``: title, the mask in ``label_colors`` ((n, 3) uint8 RGB)
    and a legend of class names. ``None`` takes names and colours from the HELLO ``labels``, else
    ``class <id>`` and ``default_palette``. ``frame_rgb(frame_index)``, where the frame is at hand
    (the demo runs device and host in one process), gives its (H, W, 3) uint8 pseudo-RGB: the
    picture then shows the frame and the mask over it."""

    out_dir: str | os.PathLike | None
    label_colors: np.ndarray | None = None
    every: int = 1
    decoder: StreamDecoder = field(default_factory=StreamDecoder)
    log: deque = field(default_factory=lambda: deque(maxlen=50))  # recent (level, text) of LOG/ERROR
    frame_rgb: Callable[[int], np.ndarray | None] | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ProtocolError(f"every must be >= 1, got {self.every}")
        self._stats = ReceiverStats()
        self._mask_times: deque[int] = deque(maxlen=FPS_WINDOW)
        self._mask_bytes_total = 0
        self.last_mask = None
        if self.out_dir is not None:
            self.out_dir = Path(self.out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def feed(self, data: bytes) -> list[Packet]:
        """Decode ``data`` and consume every packet it completes; returns those packets."""
        packets = self.decoder.feed(data)
        for packet in packets:
            self.consume(packet)
        return packets

    def consume(self, packet: Packet) -> None:
        """Handle one verified packet (malformed payloads are counted, not raised)."""
        self._stats.packets += 1
        try:
            message = packet.message()
        except ProtocolError as exc:
            self._stats.payload_errors += 1
            self._stats.last_error = f"{packet.type.name} payload: {exc}"
            return
        if packet.type == PacketType.MASK:
            self._mask(packet, message)
        elif packet.type == PacketType.HELLO:
            self._stats.device = message
        elif packet.type == PacketType.STATUS:
            self._stats.status = {**asdict(message), "model_id": message.model_id.hex()}
        elif packet.type == PacketType.LOG:
            self.log.append((message.level, message.text))
        elif packet.type == PacketType.ERROR:
            self._stats.device_errors += 1
            self._stats.last_error = f"device error {message.code}: {message.text}"
            self.log.append((40, self._stats.last_error))

    def _hello_labels(self) -> list[dict]:
        labels = (self._stats.device or {}).get("labels")
        if not isinstance(labels, list):
            return []
        try:
            return sorted((lb for lb in labels if isinstance(lb, dict)), key=lambda lb: int(lb["id"]))
        except (KeyError, TypeError, ValueError):
            return []

    def _colors(self, n: int) -> np.ndarray:
        colors = self.label_colors
        if colors is None and self._hello_labels():
            try:
                colors = np.asarray([lb["color"] for lb in self._hello_labels()], dtype=np.uint8).reshape(-1, 3)
            except (KeyError, TypeError, ValueError):
                colors = None
        colors = default_palette(n) if colors is None else np.asarray(colors, dtype=np.uint8)
        if len(colors) < n:  # more classes than colours: extend, never fail on a picture
            colors = np.concatenate((colors, default_palette(n)[len(colors) :]))
        return colors

    def _names(self, n: int) -> list[str]:
        """Class names by id from the HELLO ``labels``; ``class <id>`` where it names none."""
        names = {}
        for lb in self._hello_labels():
            try:
                names[int(lb["id"])] = str(lb["name"])
            except (KeyError, TypeError, ValueError):
                continue
        return [names.get(i, f"class {i}") for i in range(n)]

    def _title(self, message: Any) -> str:
        hello = self._stats.device or {}
        model = " ".join(str(hello[k]) for k in ("model_name", "model_version") if hello.get(k))
        return f"{model or 'mask'}  frame {message.frame_index}  ({message.class_count} classes)"

    def _picture(self, message: Any) -> np.ndarray:
        from xenoedge.xeno.previews import mask_picture

        n = max(message.class_count, int(message.classes.max(initial=0)) + 1)
        colors = self._colors(n)
        rgb = self.frame_rgb(message.frame_index) if self.frame_rgb is not None else None
        if rgb is not None and rgb.shape[:2] != message.classes.shape:
            rgb = None
        return mask_picture(message.classes, colors[:n], self._names(n), self._title(message), rgb=rgb)

    def _mask(self, packet: Packet, message: Any) -> None:
        stats = self._stats
        stats.masks += 1
        stats.last_mask_bytes = len(packet.payload)
        self._mask_bytes_total += len(packet.payload)
        stats.mean_mask_bytes = self._mask_bytes_total / stats.masks
        self._mask_times.append(packet.timestamp_us)
        if len(self._mask_times) >= 2 and self._mask_times[-1] > self._mask_times[0]:
            stats.fps = (len(self._mask_times) - 1) * 1e6 / (self._mask_times[-1] - self._mask_times[0])
        self.last_mask = message
        if self.out_dir is not None and (stats.masks - 1) % self.every == 0:
            write_rgb_png(self.out_dir / f"mask_{message.frame_index:08d}.png", self._picture(message))
            stats.images_written += 1

    @property
    def masks(self) -> int:
        """Masks received so far."""
        return self._stats.masks

    def stats(self) -> ReceiverStats:
        """A snapshot of the live stats, with the decoder's counters merged in."""
        d = self.decoder.stats
        s = self._stats
        s.crc_errors, s.framing_errors, s.bytes = d.crc_errors, d.framing_errors, d.bytes
        s.sequence_gaps, s.missing_packets = d.sequence_gaps, d.missing_packets
        return ReceiverStats(**{**asdict(s), "device": s.device, "status": s.status})


def link_chunks(
    link: Any, *, read_bytes: int = 4096, timeout_s: float = 0.1, stop: Callable[[], bool] | None = None
) -> Iterator[bytes]:
    """Chunks read from ``link`` (anything with ``read(max_bytes, timeout_s) -> bytes``, e.g. an
    ``xenoedge.edge.links`` link) until ``stop()`` is true; yields ``b""`` on timeouts so that
    ``run_listen`` can still report stats while the device is silent."""
    while stop is None or not stop():
        yield link.read(read_bytes, timeout_s)


def run_listen(
    source: Iterable[bytes],
    receiver: Receiver,
    stats_callback: Callable[[ReceiverStats], None] | None = None,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    max_masks: int | None = None,
) -> ReceiverStats:
    """Feed every chunk of ``source`` (e.g. reads from a link; empty chunks are fine) to
    ``receiver``; call ``stats_callback`` at most every ``interval_s`` seconds of ``clock``
    and once at the end; stop at the end of ``source`` or after ``max_masks`` masks.
    Returns the final stats."""
    last = clock()
    for chunk in source:
        receiver.feed(chunk)
        now = clock()
        if stats_callback is not None and now - last >= interval_s:
            stats_callback(receiver.stats())
            last = now
        if max_masks is not None and receiver.masks >= max_masks:
            break
    for packet in receiver.decoder.finish():
        receiver.consume(packet)
    final = receiver.stats()
    if stats_callback is not None:
        stats_callback(final)
    return final
