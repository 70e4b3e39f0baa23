"""Output links: the byte stream from the device to a receiver, with an inbound control channel.

``open_link("serial:/dev/xenoedge@921600")``, ``"tcp:host:port"``, ``"file:PATH"``, ``"pty"``,
``"null"``, ``"loop://"`` — see :data:`LINK_KINDS` and docs/links.md.
"""

from xenoedge.edge.links._base import (
    DEFAULT_BACKOFF_S,
    DEFAULT_BUFFER_BYTES,
    DOWN,
    UP,
    WAITING,
    Backoff,
    Link,
    LinkError,
    LinkSpecError,
    LinkStats,
    NoSuchPortError,
    OutboundBuffer,
    ReconnectingLink,
)
from xenoedge.edge.links.file_link import FileLink, NullLink
from xenoedge.edge.links.serial_link import DEFAULT_BAUD, STABLE_DIRS, PtyLink, SerialLink, serial_ports, stable_alias
from xenoedge.edge.links.spec import LINK_KINDS, LinkKind, check_port, make_link, open_link, parse_kind, port_spec
from xenoedge.edge.links.tcp_link import TcpLink

__all__ = [
    "DEFAULT_BACKOFF_S",
    "DEFAULT_BAUD",
    "DEFAULT_BUFFER_BYTES",
    "DOWN",
    "LINK_KINDS",
    "STABLE_DIRS",
    "UP",
    "WAITING",
    "Backoff",
    "FileLink",
    "Link",
    "LinkError",
    "LinkKind",
    "LinkSpecError",
    "LinkStats",
    "NoSuchPortError",
    "NullLink",
    "OutboundBuffer",
    "PtyLink",
    "ReconnectingLink",
    "SerialLink",
    "TcpLink",
    "check_port",
    "make_link",
    "open_link",
    "parse_kind",
    "port_spec",
    "serial_ports",
    "stable_alias",
]
