"""GPS positions for scan frames: NMEA 0183 from a serial GPS, parsed with ``pynmea2``.

A ``GpsReader`` reads the port (pyserial: a device path such as ``/dev/ttyACM0``, or any
pyserial URL) in a background thread, splits the byte stream into lines and hands each to
``NmeaParser``. GGA (fix quality, satellites, HDOP, altitude) and RMC (status A/V) sentences
with a valid checksum give fixes; the latest one is the position of a frame taken while it is
at most ``max_fix_age_s`` old (monotonic clock, injected in tests). Anything else is counted,
never raised: a line with a bad or missing checksum (``bad_checksum``), bytes that are not an
NMEA sentence at all (``not_nmea``: binary junk, an over-long line, no ``$``), and a sentence
pynmea2 cannot read or whose fields are not numbers (``unparsable``). Frames are scanned
either way; their position is then marked missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from xenoedge.edge.scan.errors import ScanError

#: Longest line kept (NMEA allows 82 characters; some receivers send a little more).
MAX_LINE_BYTES = 120
#: Kinds of rejected lines, as counted in ``GpsCounts.rejected``.
REJECTED_KINDS = ("bad_checksum", "not_nmea", "unparsable")
#: Seconds between attempts to reopen a GPS port that failed.
REOPEN_WAIT_S = 1.0


@dataclass(frozen=True)
class Fix:
    """One position: WGS84 degrees (north and east positive), altitude above mean sea level in m.

    ``quality`` is GGA's fix quality (1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float; None from RMC);
    ``utc_time`` the receiver's hh:mm:ss; ``received_s`` the reader's monotonic clock.
    """

    latitude: float
    longitude: float
    altitude_m: float | None
    quality: int | None
    satellites: int | None
    hdop: float | None
    utc_time: str | None
    sentence: str
    received_s: float

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "received_s"}


@dataclass
class GpsCounts:
    """What the reader saw: lines, fixes, valid sentences without a fix, other sentence types,
    rejected lines by kind, and port failures."""

    lines: int = 0
    fixes: int = 0
    no_fix: int = 0
    ignored: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTED_KINDS, 0))
    port_errors: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rejected_total": self.rejected_total}


def rejected_text(rejected: dict[str, int]) -> str:
    """``GpsCounts.rejected`` for people: ``"bad checksum 3, not nmea 1"`` (kinds seen only)."""
    return ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in rejected.items() if n)


def _number(value: Any, kind: type) -> Any:
    return kind(value) if value not in (None, "") else None


class NmeaParser:
    """Turns NMEA lines into ``Fix`` objects and counts everything else (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.counts = GpsCounts()
        self.last_problem: str | None = None
        self._clock = clock

    def _reject(self, kind: str, problem: str) -> None:
        self.counts.rejected[kind] += 1
        self.last_problem = problem

    def feed_line(self, raw: bytes) -> Fix | None:
        """One line without its line end; the fix it carries, or None."""
        import pynmea2

        raw = raw.strip(b"\r\n\x00 ")
        if not raw:
            return None
        self.counts.lines += 1
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._reject("not_nmea", f"{len(raw)} bytes that are not ASCII")
            return None
        if len(raw) > MAX_LINE_BYTES or not text.startswith(("$", "!")) or not text.isprintable():
            self._reject("not_nmea", f"not an NMEA sentence: {text[:40]!r}")
            return None
        try:
            message = pynmea2.parse(text, check=True)
        except pynmea2.ChecksumError as exc:
            self._reject("bad_checksum", f"{text[:40]!r}: {exc.args[0]}")
            return None
        except pynmea2.SentenceTypeError:  # checksum right, a type pynmea2 does not know (proprietary)
            self.counts.ignored += 1
            return None
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError) as exc:
            self._reject("unparsable", f"{text[:40]!r}: {exc}")
            return None
        try:
            fix = self._fix(message)
        except (ValueError, TypeError, AttributeError) as exc:  # checksum right, fields garbled
            self._reject("unparsable", f"{text[:40]!r}: bad field ({exc})")
            return None
        if fix is not None:
            self.counts.fixes += 1
        return fix

    def _fix(self, message: Any) -> Fix | None:
        kind = getattr(message, "sentence_type", "")
        if kind == "GGA":
            quality = _number(message.gps_qual, int) or 0
            if quality == 0 or not message.lat:
                self.counts.no_fix += 1
                return None
            altitude = _number(message.altitude, float)
            satellites, hdop = _number(message.num_sats, int), _number(message.horizontal_dil, float)
        elif kind == "RMC":
            if message.status != "A" or not message.lat:
                self.counts.no_fix += 1
                return None
            quality = altitude = satellites = hdop = None
        else:
            self.counts.ignored += 1
            return None
        lat, lon = float(message.latitude), float(message.longitude)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"position {lat}, {lon} out of range")
        stamp = message.timestamp.strftime("%H:%M:%S") if getattr(message, "timestamp", None) else None
        return Fix(lat, lon, altitude, quality, satellites, hdop, stamp, kind, self._clock())


def parse_port_spec(spec: str) -> tuple[str, int]:
    """``"/dev/ttyACM0@9600"`` -> (port, baud); the baud rate defaults to 9600 (NMEA's standard).

    >>> parse_port_spec("/dev/ttyUSB0@4800")
    ('/dev/ttyUSB0', 4800)
    """
    port, sep, baud = spec.rpartition("@")
    if not sep or "://" in baud:
        return spec, 9600
    try:
        rate = int(baud)
    except ValueError:
        raise ScanError(f"GPS port {spec!r}: baud rate {baud!r} is not a number (PORT[@BAUD])") from None
    if rate <= 0:
        raise ScanError(f"GPS port {spec!r}: baud rate must be positive")
    return port, rate


class GpsReader:
    """A serial GPS read in a background thread (see the module docstring).

    ``position()`` -> (fix, status): status ``"fix"`` with the latest fix, or ``"missing"`` (no
    valid fix yet, or the latest is older than ``max_fix_age_s``) with None.
    """

    def __init__(
        self,
        spec: str,
        *,
        max_fix_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.port, self.baudrate = parse_port_spec(spec)
        self.spec = spec
        self.max_fix_age_s = max_fix_age_s
        self._clock = clock
        self.parser = NmeaParser(clock)
        self._lock = threading.Lock()
        self._fix: Fix | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: Any = None
        self.last_port_error: str | None = None

    def _open_port(self) -> Any:
        import serial

        return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.1)

    def start(self) -> GpsReader:
        """Open the port (``ScanError`` when it cannot be opened) and start reading."""
        import serial

        try:
            self._serial = self._open_port()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScanError(f"GPS {self.port}: cannot open it ({exc})") from None
        self._thread = threading.Thread(target=self._run, name="xenoedge-gps", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import serial

        buffer = bytearray()
        while not self._stop.is_set():
            try:
                if self._serial is None:
                    self._serial = self._open_port()
                chunk = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                with self._lock:
                    self.parser.counts.port_errors += 1
                    self.last_port_error = str(exc)
                self._close_port()
                buffer.clear()
                self._stop.wait(REOPEN_WAIT_S)
                continue
            if not chunk:
                continue
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > MAX_LINE_BYTES:  # junk without line ends: count it once, drop it
                        self._feed(bytes(buffer))
                        buffer.clear()
                    break
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                self._feed(line)

    def _feed(self, line: bytes) -> None:
        with self._lock:
            fix = self.parser.feed_line(line)
            if fix is not None:
                self._fix = fix

    def position(self) -> tuple[Fix | None, str]:
        with self._lock:
            fix = self._fix
        if fix is None or self._clock() - fix.received_s > self.max_fix_age_s:
            return None, "missing"
        return fix, "fix"

    def counts(self) -> GpsCounts:
        """A copy of the counts (safe to read while the thread runs)."""
        with self._lock:
            c = self.parser.counts
            return GpsCounts(c.lines, c.fixes, c.no_fix, c.ignored, dict(c.rejected), c.port_errors)

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception:
                pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_port()

    def __enter__(self) -> GpsReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
