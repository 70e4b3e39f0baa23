"""``open_link(spec)``: one table of link kinds, read by the parser, the CLI help and docs/links.md."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenoedge.edge.links._base import Link, LinkSpecError
from xenoedge.edge.links.file_link import FileLink, NullLink
from xenoedge.edge.links.serial_link import DEFAULT_BAUD, PtyLink, SerialLink, is_port_path, no_such_port
from xenoedge.edge.links.tcp_link import TcpLink

from xenoedge.errors import UnknownNameError


@dataclasses.dataclass(frozen=True)
class LinkKind:
    """One row of :data:`LINK_KINDS`: how a spec of this kind is written and built."""

    name: str
    syntax: str
    example: str
    summary: str
    build: Callable[[str, dict[str, Any]], Link]


def _serial(rest: str, options: dict[str, Any]) -> Link:
    path, baud = rest, DEFAULT_BAUD
    if "@" in rest:
        path, _, baud_text = rest.rpartition("@")
        if not baud_text.isdigit() or int(baud_text) <= 0:
            raise LinkSpecError(f"serial:{rest}: baud {baud_text!r} is not a positive whole number")
        baud = int(baud_text)
    if not path:
        raise LinkSpecError("serial: needs a device path, e.g. serial:/dev/xenoedge@921600")
    return SerialLink(path, baud, **options)


def _tcp(rest: str, options: dict[str, Any]) -> Link:
    host, sep, port_text = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LinkSpecError(f"tcp:{rest}: expected tcp:HOST:PORT with PORT in 1..65535 (IPv6 as tcp:[::1]:PORT)")
    return TcpLink(host, int(port_text), **options)


def _file(rest: str, options: dict[str, Any]) -> Link:
    if not rest:
        raise LinkSpecError("file: needs a path, e.g. file:recording.xes")
    return FileLink(rest, **options)


def _no_argument(kind: str, factory: Callable[..., Link]) -> Callable[[str, dict[str, Any]], Link]:
    def build(rest: str, options: dict[str, Any]) -> Link:
        if rest:
            raise LinkSpecError(f"{kind}: takes no argument, got {kind}:{rest}")
        return factory(**options)

    return build


def _loop(rest: str, options: dict[str, Any]) -> Link:
    return SerialLink("loop:" + rest, **options)


#: every link kind, in the order the docs list them
LINK_KINDS: dict[str, LinkKind] = {
    k.name: k
    for k in (
        LinkKind(
            "serial",
            "serial:PATH[@BAUD]",
            "serial:/dev/xenoedge@921600",
            "Serial port or USB CDC via pyserial; exclusive, write timeout, reopen by PATH with backoff "
            f"(baud default {DEFAULT_BAUD}).",
            _serial,
        ),
        LinkKind(
            "pty",
            "pty",
            "pty",
            "New pseudo-terminal pair; prints the slave path for a receiver (demos).",
            _no_argument("pty", PtyLink),
        ),
        LinkKind(
            "tcp",
            "tcp:HOST:PORT",
            "tcp:192.168.7.1:5555",
            "TCP client to a listening receiver; reconnect with backoff.",
            _tcp,
        ),
        LinkKind(
            "file",
            "file:PATH",
            "file:recording.xes",
            "Append to a file (recordings); fsync on flush and close.",
            _file,
        ),
        LinkKind(
            "null", "null", "null", "Discard everything, count bytes (benchmarks).", _no_argument("null", NullLink)
        ),
        LinkKind(
            "loop",
            "loop://",
            "loop://",
            "pyserial's software loopback: what is written is read back (tests).",
            _loop,
        ),
    )
}


def parse_kind(spec: str) -> tuple[str, str]:
    """Split a spec into (kind, rest).

    >>> parse_kind("serial:/dev/xenoedge@921600"), parse_kind("loop://"), parse_kind("null")
    (('serial', '/dev/xenoedge@921600'), ('loop', '//'), ('null', ''))
    """
    kind, _, rest = spec.strip().partition(":")
    return kind, rest


def port_spec(port: str, baud: int = DEFAULT_BAUD) -> str:
    """The one spelling of a device port for ``listen``, ``flash`` and ``device``: a bare path
    (``/dev/ttyACM0``, ``./ttyX``) becomes ``serial:PATH@BAUD``; a link spec (``serial:...``,
    ``tcp:...``, ``file:...``, ``loop://``) is kept as given.

    >>> port_spec("/dev/ttyACM0", 115200), port_spec("serial:/dev/xenoedge@921600"), port_spec("loop://")
    ('serial:/dev/ttyACM0@115200', 'serial:/dev/xenoedge@921600', 'loop://')
    """
    port = port.strip()
    if port.startswith(("/", ".", "~")):
        return f"serial:{Path(port).expanduser()}@{baud}"
    return port


def check_port(spec: str) -> None:
    """Raise :class:`NoSuchPortError` (naming the path, listing the ports that exist) when ``spec``
    is a serial port whose path does not exist; other kinds and malformed specs pass (``make_link``
    reports those)."""
    kind, rest = parse_kind(spec)
    if kind != "serial":
        return
    path = rest.rpartition("@")[0] if "@" in rest and rest.rpartition("@")[2].isdigit() else rest
    if path and is_port_path(path) and not os.path.exists(path):
        raise no_such_port(path)


def make_link(spec: str, **options: Any) -> Link:
    """Build the link a spec names, not yet opened. ``options`` go to its constructor (e.g. ``buffer_bytes``).

    Raises:
        UnknownNameError: the kind is not in :data:`LINK_KINDS` (the message lists them).
        LinkSpecError: the kind is known but the rest of the spec does not parse.
    """
    kind, rest = parse_kind(spec)
    if kind not in LINK_KINDS:
        raise UnknownNameError("link kind", kind, list(LINK_KINDS))
    return LINK_KINDS[kind].build(rest, options)


def open_link(spec: str, **options: Any) -> Link:
    """Build and open the link a spec names (see :data:`LINK_KINDS`); use it as a context manager.

    >>> with open_link("null") as link:
    ...     link.write(b"mask"), link.stats.bytes_written
    (True, 4)
    """
    link = make_link(spec, **options)
    link.open()
    return link
