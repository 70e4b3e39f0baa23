"""StreamDecoder: bytes from a link in, verified packets out; resynchronises after damage.

Frames end at 0x00. Each complete frame is COBS-decoded and verified (magic, length, CRC-32C).
A frame that fails is counted and *salvaged*: it is searched for packet starts (a COBS code
byte followed by the magic ``XE``), and from each start the COBS groups are walked until the
decoded length matches that header's ``payload_length``; a CRC-valid packet found so is kept.
This recovers the intact packets on either side of a damaged or missing delimiter and after
garbage without a 0x00, so damage costs at most the packets whose own bytes were hit.

>>> from xenoedge.edge.protocol.packets import PacketType, encode_packet, log_payload
>>> def frame(i, text):
...     return encode_packet(PacketType.LOG, log_payload(20, text), sequence=i, timestamp_us=0)
>>> frames = [frame(i, t) for i, t in enumerate("abc")]
>>> stream = b"junk" + frames[0] + frames[1][:-1] + frames[2]  # garbage, then a lost delimiter
>>> dec = StreamDecoder()
>>> [p.log().text for p in dec.feed(stream)], dec.stats.framing_errors, dec.stats.salvaged
(['a', 'b', 'c'], 2, 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cobs import cobs
from xenoedge.edge.protocol.packets import (
    HEADER_SIZE,
    MAGIC,
    MAX_PAYLOAD_BYTES,
    OVERHEAD,
    U32_MAX,
    ChecksumError,
    Packet,
    ProtocolError,
    UnsupportedPacket,
    max_frame_bytes,
    parse_packet,
)

_LENGTH_OFFSET = HEADER_SIZE - 4  # payload_length u32 at bytes 17..20
_SALVAGE_SLACK = 4096  # COBS chunks a salvage may walk beyond 2 per byte of the damaged frame


@dataclass
class DecoderStats:
    """Counters of a ``StreamDecoder`` (all cumulative)."""

    bytes: int = 0  # bytes fed
    frames: int = 0  # non-empty 0x00-terminated chunks seen
    packets: int = 0  # verified packets returned
    crc_errors: int = 0  # frames that decoded to a well-formed packet with a wrong CRC-32C
    framing_errors: int = 0  # frames that failed COBS, magic, length or size checks
    unsupported: int = 0  # CRC-valid packets of an unknown version or type (skipped)
    salvaged: int = 0  # packets recovered from frames that failed as a whole
    sequence_gaps: int = 0  # times the sequence number jumped forward
    missing_packets: int = 0  # sequence numbers skipped by those jumps (lost or damaged packets)
    sequence_resets: int = 0  # times the sequence number went backwards (sender restarted)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class StreamDecoder:
    """Incremental decoder: ``feed`` bytes in any chunking, get the packets completed so far.

    Damaged input is counted in ``stats`` and skipped, never raised. ``ProtocolError`` is
    raised only for misuse (feeding something that is not bytes). Memory is bounded: a frame
    longer than the COBS size of a ``max_payload``-byte packet is dropped (a framing error).
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD_BYTES):
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or not 0 <= max_payload:
            raise ProtocolError(f"max_payload must be a non-negative int, got {max_payload!r}")
        self.max_payload = max_payload
        self.max_frame = max_frame_bytes(max_payload)
        self.stats = DecoderStats()
        self._buffer = bytearray()
        self._expected_sequence: int | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Consume ``data``; return the packets whose frames it completed, in stream order."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError(f"feed() takes bytes, got {type(data).__name__}")
        data = bytes(data)
        self.stats.bytes += len(data)
        packets: list[Packet] = []
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                break
            if self._buffer:
                self._buffer += data[start:end]
                chunk = bytes(self._buffer)
                self._buffer.clear()
            else:
                chunk = data[start:end]
            if chunk:
                self._frame(chunk, packets)
            start = end + 1
        self._buffer += data[start:]
        if len(self._buffer) > self.max_frame:  # no delimiter for longer than any valid frame
            self.stats.framing_errors += 1
            self._buffer.clear()
        return packets

    def finish(self) -> list[Packet]:
        """End of stream: try the bytes after the last 0x00 as a frame (a packet that lacks
        only its delimiter is accepted), then reset the buffer."""
        chunk = bytes(self._buffer)
        self._buffer.clear()
        packets: list[Packet] = []
        if chunk:
            self._frame(chunk, packets)
        return packets

    @property
    def buffered(self) -> int:
        """Bytes waiting for their 0x00 delimiter."""
        return len(self._buffer)

    def _frame(self, chunk: bytes, out: list[Packet]) -> None:
        self.stats.frames += 1
        try:
            packet = parse_packet(cobs.decode(chunk))
        except UnsupportedPacket:
            self.stats.unsupported += 1
            return
        except ChecksumError:
            self.stats.crc_errors += 1
        except (ProtocolError, cobs.DecodeError):
            self.stats.framing_errors += 1
        else:
            self._accept(packet, out)
            return
        for packet in self._salvage(chunk):
            self.stats.salvaged += 1
            self._accept(packet, out)

    def _accept(self, packet: Packet, out: list[Packet]) -> None:
        stats = self.stats
        stats.packets += 1
        if self._expected_sequence is not None:
            gap = (packet.sequence - self._expected_sequence) & U32_MAX
            if gap and gap <= U32_MAX // 2:
                stats.sequence_gaps += 1
                stats.missing_packets += gap
            elif gap:
                stats.sequence_resets += 1
        self._expected_sequence = (packet.sequence + 1) & U32_MAX
        out.append(packet)

    def _salvage(self, chunk: bytes) -> list[Packet]:
        """CRC-valid packets found inside a damaged frame (see the module doc).

        The COBS chunks walked over all starts are capped at ``2 * len(chunk) + 4096``, so a
        hostile frame (packet starts every few bytes) costs linear, not quadratic, time."""
        found: list[Packet] = []
        pos = 0
        budget = 2 * len(chunk) + _SALVAGE_SLACK
        while budget > 0:
            magic_at = chunk.find(MAGIC, pos + 1)
            if magic_at < 0:
                break
            start = magic_at - 1
            end, steps = self._frame_end(chunk, start, budget)
            budget -= steps
            packet = None
            if end is not None:
                try:
                    packet = parse_packet(cobs.decode(chunk[start:end]))
                except (ProtocolError, cobs.DecodeError):
                    packet = None
            if packet is None:
                pos = start + 1
            else:
                found.append(packet)
                pos = end
        return found

    def _frame_end(self, chunk: bytes, start: int, budget: int) -> tuple[int | None, int]:
        """Walk COBS chunks from ``chunk[start]`` to where the decoded length equals the packet
        length its header states; return (that index or None, chunks walked)."""
        n = len(chunk)
        header = bytearray()
        decoded = 0  # bytes a COBS decoder would have produced so far (data and implied zeros)
        need = None
        p = start
        steps = 0
        while p < n and steps < budget:
            steps += 1
            code = chunk[p]
            nxt = p + code
            if nxt > n:
                return None, steps
            if need is None:
                header += chunk[p + 1 : nxt]
                if len(header) >= HEADER_SIZE:
                    length = int.from_bytes(header[_LENGTH_OFFSET:HEADER_SIZE], "little")
                    need = OVERHEAD + length
                    if length > self.max_payload or need - decoded - (code - 1) > n - nxt:
                        return None, steps  # too long, or longer than what is left of the chunk
                elif code != 0xFF:
                    header.append(0)
            decoded += code - 1
            if need is not None:
                if decoded == need:
                    return nxt, steps
                if decoded > need:
                    return None, steps
            if code != 0xFF:
                decoded += 1
            p = nxt
        return None, steps
