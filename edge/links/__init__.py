"""Output links: the byte stream from the device to a receiver, with an inbound control channel.

``open_link("serial:/dev/xenoedge@921600")``, ``"tcp:host:port"``, ``"file:PATH"``, ``"pty"``,
``"null"``, ``"loop://"`` — see :data:`LINK_KINDS` and docs/links.md.
"""

from edge.links._base import (
    DEFAULT_BACKOFF_S,
    DEFAULT_BUFFER_BYTES,
    Backoff,
    Link,
    LinkError,
    LinkSpecError,
    LinkStats,
    OutboundBuffer,
    ReconnectingLink,
)
from edge.links.file_link import FileLink, NullLink
from edge.links.serial_link import DEFAULT_BAUD, STABLE_DIRS, PtyLink, SerialLink, stable_alias
from edge.links.spec import LINK_KINDS, LinkKind, make_link, open_link, parse_kind
from edge.links.tcp_link import TcpLink

__all__ = [
    "DEFAULT_BACKOFF_S",
    "DEFAULT_BAUD",
    "DEFAULT_BUFFER_BYTES",
    "LINK_KINDS",
    "STABLE_DIRS",
    "Backoff",
    "FileLink",
    "Link",
    "LinkError",
    "LinkKind",
    "LinkSpecError",
    "LinkStats",
    "NullLink",
    "OutboundBuffer",
    "PtyLink",
    "ReconnectingLink",
    "SerialLink",
    "TcpLink",
    "make_link",
    "open_link",
    "parse_kind",
    "stable_alias",
]
