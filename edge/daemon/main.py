"""The ``xenoedge run`` entry points around a ``Daemon``: signal handling (``StopSignals``),
``run_daemon`` (sink from the config, signals, systemd), ``daemon_main`` (config file to exit
code) and the end-of-run ``summary_line``.

It talks to: the coordinator (``xenoedge.edge.daemon.Daemon``, imported when a daemon is made), the
config loader, the sinks and the systemd notifier.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon.events import DaemonStats
from xenoedge.edge.sdnotify import SdNotifier

from xenoedge.errors import XenoedgeError

__all__ = ["StopSignals", "daemon_main", "run_daemon", "summary_line"]


class StopSignals:
    """SIGTERM/SIGINT ask for a stop, SIGHUP for a reference reload; installed as early as possible
    (``daemon_main`` does it before loading anything) so that a Ctrl-C during start-up is never lost.

    The first SIGINT or SIGTERM sets ``requested`` and calls the stop callbacks (the daemon stops
    after its current step or frame). SIGINT then gets its default action back, so a second Ctrl-C
    ends the process at once, even while the main thread is inside a long native call.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name: str | None = None
        self._on_stop: list[Callable[[], None]] = []
        self._on_reload: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on a stop signal (now, if one already came)."""
        self._on_stop.append(callback)
        if self.requested.is_set():
            callback()

    def on_reload(self, callback: Callable[[], None]) -> None:
        self._on_reload.append(callback)

    def install(self) -> bool:
        """Install the handlers (main thread only; False elsewhere, nothing installed)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig, handler in (
            (signal.SIGTERM, self._stop),
            (signal.SIGINT, self._stop),
            (signal.SIGHUP, self._reload),
        ):
            self._previous[sig] = signal.signal(sig, handler)
        return True

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()

    def _stop(self, signum: int, _frame: Any) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if first:
            self.signal_name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once
            if first:
                os.write(2, b"xenoedge: stopping after the current step (Ctrl-C again ends at once)\n")
        for callback in self._on_stop:
            callback()

    def _reload(self, _signum: int, _frame: Any) -> None:
        for callback in self._on_reload:
            callback()


def run_daemon(
    config: DaemonConfig,
    sink: Any | None = None,
    *,
    max_frames: int | None = None,
    notifier: SdNotifier | None = None,
    camera: Any | None = None,
    signals: StopSignals | None = None,
) -> DaemonStats:
    """The ``xenoedge run`` entry: build the sink from ``config.sink`` unless given, install
    SIGTERM/SIGINT (stop after the current step or frame) and SIGHUP (reload references) handlers,
    talk to systemd through ``NOTIFY_SOCKET``, run until stopped, flush, and return the statistics.
    ``signals``: handlers the caller installed earlier (``daemon_main``); None installs them here
    (main thread only) and restores the previous ones on return.

    Start-up failures raise ``XenoedgeError`` subclasses with a clear message (the CLI prints it
    and exits 1); a clean stop returns normally (exit 0), a stop during start-up too, with
    ``stats.stopped_during`` set.
    """
    from xenoedge.edge.daemon import Daemon
    from xenoedge.edge.sinks import sink_from_spec

    own_signals = signals is None
    if signals is None:
        signals = StopSignals()
        signals.install()
    owned = sink is None
    try:
        sink = sink_from_spec(config.sink, wait_for_port=config.wait_for_port) if owned else sink
    except BaseException:
        if own_signals:
            signals.restore()
        raise
    notifier = notifier or SdNotifier.from_environ()
    daemon = Daemon(config, sink, notifier=notifier, camera=camera)
    signals.on_stop(daemon.stop)
    signals.on_reload(daemon.request_reload)
    try:
        with daemon:
            stats = daemon.run(max_frames=max_frames)
            notifier.stopping()
            return stats
    finally:
        if own_signals:
            signals.restore()
        notifier.close()
        if owned and hasattr(sink, "close"):
            sink.close()


def summary_line(stats: DaemonStats) -> str:
    """The end-of-run line: masks made, delivered and lost, the link's state and down time, errors.
    Never says ``errors: none`` while masks were lost."""
    errors = dict(stats.errors)
    if stats.lost:
        errors["masks lost"] = stats.lost
    error_text = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    link = ""
    if stats.link is not None:
        link = f" (link {stats.link} {str(stats.link_state).upper()}, down {stats.link_down_s:.1f} s)"
    stopped = f"{stats.stopped_during}; " if stats.stopped_during else ""
    return (
        f"xenoedge run: {stopped}{stats.masks} masks, {stats.delivered} delivered, {stats.lost} lost{link}, "
        f"{stats.fps:.1f} fps, {stats.dropped} frames dropped, errors: {error_text}"
    )


def _may_come_later(config: DaemonConfig, stats: DaemonStats) -> bool:
    """A link whose receiver may appear later (TCP, a serial port waited for): no delivery warns
    instead of failing the run."""
    kind = str(config.sink).partition(":")[0]
    return kind == "tcp" or (kind == "serial" and config.wait_for_port) or stats.link_state == "waiting"


def daemon_main(
    config_path: str | Path | None = None,
    *,
    sink_object: Any | None = None,
    max_frames: int | None = None,
    log: Callable[[str], None] | None = None,
    stats_out: Callable[[DaemonStats], None] | None = None,
    banner: str | None = None,
    **overrides: Any,
) -> int:
    """What ``xenoedge run`` does: load the config (``overrides`` are CLI options, None keeps the
    file's value; ``sink="png:DIR"`` is the config's sink spec), run until stopped, return the exit
    code: 0 after a clean stop (SIGTERM, Ctrl-C, ``max_frames``, start-up interrupted included);
    1 with the reason passed to ``log`` (default: stderr) when the daemon cannot start or fails,
    or when masks were made but none reached the link (a TCP receiver or a waited-for port may
    come later: a warning then, exit 0). ``sink_object``: a ready sink (e.g. a link) used instead
    of the spec. ``stats_out``: called with the final statistics (``run --json``); ``banner``:
    logged once the signal handlers are in place (from then on a Ctrl-C is never lost)."""
    import sys

    log = log or (lambda line: print(line, file=sys.stderr))
    signals = StopSignals()
    signals.install()  # first: a Ctrl-C while the config and the bundle load is not lost
    if banner:
        log(banner)
    try:
        from xenoedge.edge.config import load_config, signature_line
        from xenoedge.edge.flashing.errors import EXIT_RESTART_LOOP, RestartLoopError

        try:
            config = load_config(config_path, **overrides)
            log(f"xenoedge run: {signature_line(config)}")
            stats = run_daemon(config, sink_object, max_frames=max_frames, signals=signals)
        except RestartLoopError as exc:
            log(f"xenoedge run: {exc}")
            return EXIT_RESTART_LOOP
        except XenoedgeError as exc:
            log(f"xenoedge run: {exc}")
            return 1
    finally:
        signals.restore()
    log(summary_line(stats))
    if stats_out is not None:
        stats_out(stats)
    if stats.masks and not stats.delivered:
        where = stats.link or f"the sink {config.sink}"
        if _may_come_later(config, stats):
            log(f"xenoedge run: warning: no mask reached {where} (its receiver never connected)")
            return 0
        log(f"xenoedge run: no mask reached {where}; {stats.masks} masks were lost")
        return 1
    return 0
