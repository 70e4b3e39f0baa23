"""ProtocolSink: daemon sink events -> frames -> StreamDecoder/Receiver give the same content back."""

import hashlib

import numpy as np
import pytest
from xenoedge.edge.protocol import PacketType, ProtocolError, StreamDecoder
from xenoedge.edge.protocol.receiver import Receiver, link_chunks, run_listen
from xenoedge.edge.protocol.sink import ProtocolSink, model_id_bytes

LABELS = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "liver", "color": [200, 40, 40]}]


class Wire:
    """A link stand-in: collects writes; ``down`` makes write() report 'not sent'; read() pops chunks."""

    def __init__(self):
        self.data, self.down, self.flushed = bytearray(), False, 0

    def write(self, data: bytes) -> bool:
        if self.down:
            return False
        self.data += data
        return True

    def flush(self):
        self.flushed += 1

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        chunk = bytes(self.data[:max_bytes])
        del self.data[:max_bytes]
        return chunk


def _events(sink: ProtocolSink, wire: Wire):
    sink.send("hello", model_id="default@1.0.0", model_name="default", model_version="1.0.0", sensor="tivita",
              sensor_signature="sig", camera_id="cam0", engine="onnxruntime:CPU", width=8, height=6, n_classes=2,
              labels=LABELS, not_json=object())  # fmt: skip
    masks = []
    for i in range(4):
        classes = np.zeros((6, 8), np.uint8)
        classes[:, : i + 1] = 1
        masks.append(classes)
        sink.send("mask", frame_index=i, timestamp_us=0, classes=classes, confidence=None, n_classes=2,
                  model_id="default@1.0.0", latency_ms=12.5, dsc=None)  # fmt: skip
    wire.down = True
    sink.send("error", code="frame", message="NaNs", frame_index=9)  # not sent: counted
    wire.down = False
    sink.send("status", fps=29.5, frames=4, dropped=1, uptime_s=3.2, errors=2,
              error_counts={"frame": 1, "sink": 1, "references": 2}, model_id="default@1.0.0", queue_depth=0,
              mean_dsc=None)  # fmt: skip
    sink.send("error", code="camera", message="timeout", frame_index=None)
    sink.send("unknown-kind", x=1)
    sink.flush()
    return masks


def test_daemon_events_round_trip_through_the_wire():
    wire = Wire()
    sink = ProtocolSink(wire, device_id="dev1", clock_us=iter(range(0, 10**7, 10**5)).__next__)
    masks = _events(sink, wire)
    packets = StreamDecoder().feed(bytes(wire.data))
    assert [p.type for p in packets] == [PacketType.HELLO] + [PacketType.MASK] * 4 + [PacketType.STATUS,
                                                                                        PacketType.ERROR]  # fmt: skip
    model_id = hashlib.sha256(b"default@1.0.0").digest()[:16]
    hello = packets[0].hello()
    assert (hello["device_id"], hello["bundle_name"], hello["bundle_version"], hello["camera_id"]) == (
        "dev1", "default", "1.0.0", "cam0")  # fmt: skip
    assert hello["model_id"] == model_id.hex() and hello["labels"] == LABELS and "not_json" not in hello
    for packet, classes in zip(packets[1:5], masks, strict=True):
        msg = packet.mask()
        np.testing.assert_array_equal(msg.classes, classes)
        assert msg.model_id == model_id
    status = packets[5].status()
    assert (status.fps, status.frames, status.dropped_frames, status.uptime_s) == (29.5, 4, 1, 3)
    assert (status.frame_errors, status.link_errors, status.latency_us) == (3, 2, 12500)
    assert packets[6].error().text == "timeout" and packets[6].error().code == 1
    assert sink.write_failures == 1 and wire.flushed == 1
    assert [p.sequence for p in packets] == [0, 1, 2, 3, 4, 6, 7]  # the unsent ERROR left a gap


def test_receiver_listens_to_a_link(tmp_path):
    wire = Wire()
    _events(ProtocolSink(wire, device_id="d", clock_us=iter(range(0, 10**7, 10**5)).__next__), wire)
    reads = iter(range(100))
    stats = run_listen(link_chunks(wire, read_bytes=50, stop=lambda: next(reads) >= 99), Receiver(tmp_path))
    assert stats.masks == 4 and stats.images_written == 4 and stats.missing_packets == 1
    assert stats.device["labels"] == LABELS and stats.status["frames"] == 4


def test_model_id_rules_and_misuse():
    sha = hashlib.sha256(b"bundle").hexdigest()
    assert model_id_bytes("x@1", sha) == bytes.fromhex(sha)[:16]
    assert model_id_bytes(None) == bytes(16) and model_id_bytes(b"k" * 16) == b"k" * 16
    with pytest.raises(ProtocolError):
        ProtocolSink(object())
