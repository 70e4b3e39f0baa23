"""``ProtocolSink``: the daemon's sink events (edge/sinks.py) as wire-protocol frames on a link.

The daemon calls ``send(kind, **fields)`` with ``hello``, ``mask``, ``status`` and ``error``
events; this sink turns each into one packet (HELLO, MASK, STATUS, ERROR), numbers and stamps
it with a ``PacketEncoder`` and writes the frame with ``link.write(bytes)`` (any object with
``write``; ``flush`` is called when it has one). Unknown kinds and fields are ignored.

Mapping (docs/protocol.md section 5):

- ``model_id`` (16 bytes) is ``model_sha256[:16]`` when the hello or mask carries a
  ``model_sha256`` (the bundle's SHA-256, hex), else the first 16 bytes of the SHA-256 of the
  daemon's ``model_id`` string (``name@version``); 16 zero bytes before any model.
- HELLO: ``device_id`` (the sink's), ``camera_id``, ``sensor_signature``, ``bundle_name`` =
  ``model_name``, ``bundle_version`` = ``model_version``, ``model_id`` (hex), plus every other
  JSON-serialisable field of the event (``labels``, ``width``, ``height``, ``engine`` ...).
- MASK: written *live*: to a link that can (``write(data, keep=False)``, the ``xenoedge.edge.links``
  links), a mask the link cannot take now (down, or full: a stalled reader) is dropped and
  counted, never buffered to arrive late. ``send`` returns True when the link took the mask,
  False when it was lost; ``masks_written`` and ``masks_dropped`` count them.
- STATUS: ``error_counts`` by code: ``camera`` -> camera_errors, ``frame`` and ``references``
  -> frame_errors, ``engine`` -> engine_errors, ``sink`` (plus this sink's failed writes) ->
  link_errors; ``latency_us`` is the last mask's ``latency_ms`` x 1000; the delivery fields are
  this sink's ``masks_written`` / ``masks_dropped`` and the link's ``down_s()`` and ``state``.
- ERROR: code by ``ERROR_CODES`` (unknown: INTERNAL); text ``"frame N: message"`` when a
  frame index is given.

>>> from xenoedge.edge.protocol import StreamDecoder
>>> class Wire(list):
...     def write(self, data): self.append(data); return True
>>> wire = Wire()
>>> sink = ProtocolSink(wire, device_id="dev", clock_us=lambda: 0)
>>> sink.send("error", code="frame", message="NaNs", frame_index=4)
True
>>> [p.error() for p in StreamDecoder().feed(b"".join(wire))]
[ErrorMessage(code=3, text='frame 4: NaNs')]
"""

from __future__ import annotations

import hashlib
import inspect
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from xenoedge.edge.protocol.masks import mask_payload
from xenoedge.edge.protocol.packets import (
    MODEL_ID_SIZE,
    ErrorCode,
    PacketEncoder,
    PacketType,
    ProtocolError,
    error_payload,
    hello_payload,
    model_id_from_sha256,
    monotonic_us,
    status_payload,
)

ERROR_CODES = {
    "camera": ErrorCode.CAMERA_READ,
    "camera_lost": ErrorCode.CAMERA_LOST,
    "frame": ErrorCode.BAD_FRAME,
    "engine": ErrorCode.ENGINE,
    "bundle": ErrorCode.BUNDLE_REFUSED,
    "references": ErrorCode.CALIBRATION,
    "sink": ErrorCode.LINK,
    "link": ErrorCode.LINK,
}
STATUS_COUNTERS = {
    "camera": "camera_errors",
    "camera_lost": "camera_errors",
    "frame": "frame_errors",
    "references": "frame_errors",
    "engine": "engine_errors",
    "sink": "link_errors",
    "link": "link_errors",
}


def model_id_bytes(model_id: object = None, model_sha256: object = None) -> bytes:
    """The 16-byte wire ``model_id`` (see the module doc)."""
    if model_sha256:
        return model_id_from_sha256(model_sha256)
    if isinstance(model_id, (bytes, bytearray)) and len(model_id) == MODEL_ID_SIZE:
        return bytes(model_id)
    if not model_id:
        return bytes(MODEL_ID_SIZE)
    return hashlib.sha256(str(model_id).encode("utf-8")).digest()[:MODEL_ID_SIZE]


def _takes_keep(link: Any) -> bool:
    """Whether ``link.write`` accepts ``keep=`` (the ``xenoedge.edge.links`` links do)."""
    try:
        return "keep" in inspect.signature(link.write).parameters
    except (TypeError, ValueError):
        return False


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class ProtocolSink:
    """A daemon sink writing wire-protocol frames to ``link`` (an object with ``write(bytes)``)."""

    def __init__(
        self,
        link: Any,
        *,
        device_id: str | None = None,
        clock_us: Callable[[], int] = monotonic_us,
        with_counts: bool = True,
    ):
        if not callable(getattr(link, "write", None)):
            raise ProtocolError(f"ProtocolSink needs an object with write(bytes), got {type(link).__name__}")
        self.link = link
        self.device_id = device_id if device_id is not None else socket.gethostname()
        self.encoder = PacketEncoder(clock_us=clock_us)
        self.with_counts = with_counts
        self.write_failures = 0  # writes the link reported as not sent (down: buffered or dropped)
        self.frames_written = 0
        self.masks_written = 0  # masks the link took
        self.masks_dropped = 0  # masks lost: the link was down or full
        self._live = _takes_keep(link)  # the link can drop a live mask instead of buffering it
        self._model_sha256: str | None = None
        self._latency_us = 0
        self._lock = threading.Lock()  # the daemon's control thread answers on the same link

    def send_packet(self, ptype: PacketType, payload: bytes) -> None:
        """Write one packet of any type (thread-safe; the daemon's flashing replies use it)."""
        self._write(ptype, payload)

    def _write(self, ptype: PacketType, payload: bytes, *, live: bool = False) -> bool:
        with self._lock:
            frame = self.encoder.encode(ptype, payload)
            try:
                ok = self.link.write(frame, keep=False) if live and self._live else self.link.write(frame)
            except OSError:
                ok = False
            if ok is False:  # counted under the lock too: the frame loop and the reply thread both write
                self.write_failures += 1
            else:
                self.frames_written += 1
            return ok is not False

    def link_state(self) -> str:
        """The link's state (``up``, ``down``, ``waiting``), ``unknown`` for a plain writer."""
        state = getattr(self.link, "state", None)
        return state if isinstance(state, str) else "unknown"

    def link_down_s(self) -> float:
        """Seconds the link has been down or waiting (0.0 for a plain writer)."""
        down_s = getattr(self.link, "down_s", None)
        return float(down_s()) if callable(down_s) else 0.0

    def _model_id(self, fields: dict[str, Any]) -> bytes:
        return model_id_bytes(fields.get("model_id"), fields.get("model_sha256") or self._model_sha256)

    def send(self, kind: str, **fields: Any) -> bool:
        """Encode one daemon event and write it (see the module doc for the mapping); False when
        the link did not take it (a mask is then lost, other packets wait in the link's buffer)."""
        if kind == "hello":
            self._model_sha256 = fields.get("model_sha256") or None
            info = {k: v for k, v in fields.items() if k != "model_id" and _jsonable(v)}
            info.update(
                device_id=self.device_id,
                camera_id=fields.get("camera_id"),
                sensor_signature=fields.get("sensor_signature"),
                bundle_name=fields.get("model_name"),
                bundle_version=fields.get("model_version"),
                model_id=self._model_id(fields).hex(),
                model=fields.get("model_id"),
            )
            return self._write(PacketType.HELLO, hello_payload(info))
        if kind == "mask":
            latency_ms = fields.get("latency_ms")
            if isinstance(latency_ms, (int, float)) and latency_ms >= 0:
                self._latency_us = int(latency_ms * 1000)
            classes = np.asarray(fields["classes"])
            payload = mask_payload(
                classes,
                frame_index=int(fields["frame_index"]) & 0xFFFFFFFF,
                model_id=self._model_id(fields),
                n_classes=int(fields.get("n_classes") or int(classes.max()) + 1),
                with_counts=self.with_counts,
            )
            delivered = self._write(PacketType.MASK, payload, live=True)
            with self._lock:
                if delivered:
                    self.masks_written += 1
                else:
                    self.masks_dropped += 1
            return delivered
        if kind == "status":
            counters = dict.fromkeys(("camera_errors", "frame_errors", "engine_errors", "link_errors"), 0)
            for code, n in (fields.get("error_counts") or {}).items():
                if code in STATUS_COUNTERS:
                    counters[STATUS_COUNTERS[code]] += int(n)
            counters["link_errors"] += self.write_failures
            payload = status_payload(
                uptime_s=max(0.0, float(fields.get("uptime_s") or 0.0)),
                fps=max(0.0, float(fields.get("fps") or 0.0)),
                frames=int(fields.get("frames") or 0),
                dropped_frames=int(fields.get("dropped") or 0),
                model_id=self._model_id(fields),
                latency_us=self._latency_us,
                masks_delivered=self.masks_written,
                masks_lost=self.masks_dropped,
                link_down_s=self.link_down_s(),
                link_state=self.link_state(),
                **counters,
            )
            return self._write(PacketType.STATUS, payload)
        if kind == "error":
            code = ERROR_CODES.get(str(fields.get("code")), ErrorCode.INTERNAL)
            message = str(fields.get("message", ""))
            index = fields.get("frame_index")
            text = f"frame {index}: {message}" if index is not None else message
            return self._write(PacketType.ERROR, error_payload(code, text))
        return True

    def flush(self) -> None:
        """Flush the link when it can."""
        flush = getattr(self.link, "flush", None)
        if callable(flush):
            flush()
