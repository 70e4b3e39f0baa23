"""What the parts of the daemon share: its errors, its statistics (``DaemonStats``, ``mean_dsc``)
and its events to the sink (``Events``).

``Events`` is how every part reports: the frame pipeline sends from the worker thread, the model
manager and the control channel (and the capture thread) queue their reports with ``later`` for
the worker to send between two frames, so a sink need not be thread-safe. It talks to the sink
and counts errors into ``DaemonStats.errors``; it imports nothing from the other parts.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xenoedge.errors import XenoedgeError

__all__ = ["MAX_PENDING_EVENTS", "DaemonError", "DaemonStats", "Events", "StartupInterrupted", "mean_dsc"]

#: Most error events kept while the worker is busy (oldest dropped beyond).
MAX_PENDING_EVENTS = 256


class DaemonError(XenoedgeError):
    """The daemon cannot start (no bundle, no references, failed self-test) or was used wrongly."""


class StartupInterrupted(DaemonError):
    """``stop()`` (SIGTERM, Ctrl-C) arrived during start-up; the message names the steps done."""


@dataclass
class DaemonStats:
    """What a run did. ``frames``: frames taken off the queue; ``masks``: masks made (sent to the
    sink); ``delivered``: masks the sink took (a link: written to it); ``lost``: masks the sink
    did not take (a link down or full); ``dropped``: frames the capture queue dropped.
    ``link``: the link's spec (None for a PNG/null sink), ``link_state`` (``up``, ``down``,
    ``waiting``), ``link_down_s``: seconds the link was down or waiting; ``stopped_during``: the
    start-up step a stop arrived in (None when start-up completed)."""

    frames: int = 0
    masks: int = 0
    delivered: int = 0
    lost: int = 0
    skipped: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    link: str | None = None
    link_state: str | None = None
    link_down_s: float = 0.0
    stopped_during: str | None = None
    dsc: list[float] = field(default_factory=list)
    started_s: float = 0.0
    elapsed_s: float = 0.0
    #: Per-stage durations in ns (``perf_counter_ns``), recorded only when set to a dict (``{}``)
    #: before ``run``: ``capture`` (camera read, capture thread), ``calibrate`` (check + demosaic /
    #: calibrate into the input buffer), ``infer`` (the engine, in-graph post-processing included),
    #: ``send`` (ground-truth scoring when on, and the sink's ``send`` of the mask: encoding, the link).
    #: None: nothing recorded.
    stage_ns: dict[str, list[int]] | None = None

    def record_stage(self, stage: str, ns: int) -> None:
        """Append one duration (ns) to ``stage_ns[stage]`` when stage timing is on."""
        if self.stage_ns is not None:
            self.stage_ns.setdefault(stage, []).append(ns)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def fps(self) -> float:
        return self.masks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mean_dsc(self) -> float | None:
        return float(np.mean(self.dsc)) if self.dsc else None

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values (``xenoedge run --json``)."""
        return {
            "frames": self.frames,
            "masks": self.masks,
            "delivered": self.delivered,
            "lost": self.lost,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "errors": dict(self.errors),
            "fps": round(self.fps, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "mean_dsc": self.mean_dsc,
            "link": self.link,
            "link_state": self.link_state,
            "link_down_s": round(self.link_down_s, 3),
            "stopped_during": self.stopped_during,
        }


def mean_dsc(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> float | None:
    """Mean DSC over the foreground classes present in ``truth`` ((H, W) ids each); None when
    the truth has only background. The project's one definition (``xenoedge.xeno.evaluate``: per image,
    classes present in the truth, background id 0 left out), computed here without ``xeno``.

    >>> mean_dsc(np.array([[0, 1, 1]]), np.array([[0, 1, 2]]), 3)
    0.3333333333333333
    """
    k = max(n_classes, int(predicted.max()) + 1, int(truth.max()) + 1)
    cm = np.bincount(truth.astype(np.int64).ravel() * k + predicted.ravel(), minlength=k * k).reshape(k, k)
    in_truth, in_pred = cm.sum(axis=1), cm.sum(axis=0)
    present = np.flatnonzero(in_truth[1:]) + 1
    if not present.size:
        return None
    return float(np.mean(2.0 * np.diag(cm)[present] / (in_truth[present] + in_pred[present])))


class Events:
    """The daemon's events to the sink, and the error counts in ``stats.errors``.

    ``send`` is for the worker thread only (a sink need not be thread-safe); other threads (capture,
    control channel, flashing jobs) queue their reports with ``later``, and the worker sends them
    with ``drain`` between two frames.
    """

    def __init__(self, sink: Any, stats: DaemonStats):
        self.sink = sink
        self.stats = stats
        self._pending: collections.deque = collections.deque(maxlen=MAX_PENDING_EVENTS)

    def send(self, kind: str, **fields: Any) -> bool:
        """Hand one event to the sink; False when it raised or said it did not deliver (a link down)."""
        try:
            return self.sink.send(kind, **fields) is not False
        except Exception as exc:  # a failing link must not stop the device
            if kind == "error":
                self.count("sink")  # the report itself was lost
            else:  # counted once, when the worker reports it
                self.later("sink", f"sink failed on {kind!r}: {type(exc).__name__}: {exc}")
            return False

    def count(self, code: str) -> None:
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1

    def error(self, code: str, message: str, frame_index: int | None = None) -> None:
        """Count an error and send it now (worker thread)."""
        self.count(code)
        self.send("error", code=code, message=message, frame_index=frame_index)

    def later(self, code: str, message: str, frame_index: int | None = None) -> None:
        """Queue an error for the worker to send (any thread; the oldest are dropped beyond
        ``MAX_PENDING_EVENTS``)."""
        self._pending.append((code, message, frame_index))

    def drain(self) -> None:
        """Send the queued errors (worker thread)."""
        while self._pending:
            code, message, index = self._pending.popleft()
            if code == "camera" and message.startswith("camera finished"):
                self.send("error", code="camera", message=message, frame_index=index)  # an end, not a fault
            else:
                self.error(code, message, index)
