"""systemd's notify protocol in a few lines: ``READY=1``, ``WATCHDOG=1``, ``STATUS=…`` over ``NOTIFY_SOCKET``.

systemd passes a unix datagram socket path in ``NOTIFY_SOCKET`` (a leading ``@`` means the
abstract namespace) and, with ``WatchdogSec=``, the interval in ``WATCHDOG_USEC``. Each message
is one datagram of ``KEY=VALUE`` lines. No dependency; a notifier without a socket does nothing,
so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["SdNotifier"]


class SdNotifier:
    """Sends notify messages to ``socket_path`` (None: a no-op notifier).

    ``watchdog_interval_s``: systemd's watchdog timeout; ``watchdog()`` sends at most every half
    of it (every second when unknown). ``clock`` is injectable (seconds, monotonic).
    """

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.socket_path = socket_path
        self.watchdog_interval_s = watchdog_interval_s
        self._clock = clock
        self._last_watchdog: float | None = None
        self._sock: socket.socket | None = None
        self.sent: int = 0
        self.failures: int = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **kwargs) -> SdNotifier:
        """The notifier systemd asked for through ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` / ``WATCHDOG_PID``."""
        env = os.environ if environ is None else environ
        interval = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1e6
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_interval_s=interval, **kwargs)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def notify(self, message: str) -> bool:
        """Send one datagram; False (and counted) when it cannot be sent. Never raises."""
        if self.socket_path is None:
            return False
        address = "\0" + self.socket_path[1:] if self.socket_path.startswith("@") else self.socket_path
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), address)
        except OSError:
            self.failures += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    @property
    def watchdog_period_s(self) -> float:
        """How often ``watchdog()`` really sends: half of systemd's interval, or 1 s."""
        return self.watchdog_interval_s / 2 if self.watchdog_interval_s else 1.0

    def watchdog(self) -> bool:
        """``WATCHDOG=1``, rate-limited to ``watchdog_period_s``; True when sent."""
        now = self._clock()
        if self._last_watchdog is not None and now - self._last_watchdog < self.watchdog_period_s:
            return False
        self._last_watchdog = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
