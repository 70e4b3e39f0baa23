"""Hypothesis: round trips of random masks and payloads; mutated streams never raise anything
but ProtocolError and every packet outside the damage is recovered."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from xenoedge.edge.protocol import (
    PacketType,
    ProtocolError,
    StreamDecoder,
    decode_mask,
    encode_packet,
    mask_payload,
)

MODEL_ID = bytes(range(16))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def masks(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    n = draw(st.integers(1, 255))
    style = draw(st.sampled_from(["noise", "blocks"]))
    if style == "noise":
        classes = draw(arrays(np.uint8, (h, w), elements=st.integers(0, n - 1)))
    else:  # few long runs, as real masks have
        values = draw(arrays(np.uint8, (h, 1), elements=st.integers(0, n - 1)))
        classes = np.repeat(values, w, axis=1)
    return classes, n


@SETTINGS
@given(masks(), st.integers(0, 2**32 - 1), st.booleans())
def test_random_masks_round_trip(mask, frame_index, with_counts):
    classes, n = mask
    msg = decode_mask(
        mask_payload(classes, frame_index=frame_index, model_id=MODEL_ID, n_classes=n, with_counts=with_counts)
    )
    np.testing.assert_array_equal(msg.classes, classes)
    assert msg.frame_index == frame_index and msg.class_count == n


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_protocol_error_from_payload_decoders(data):
    from xenoedge.edge.protocol import decode_error, decode_hello, decode_log, decode_status

    for decode in (decode_mask, decode_status, decode_hello, decode_log, decode_error):
        try:
            decode(data)
        except ProtocolError:
            pass


packet_specs = st.lists(st.tuples(st.sampled_from(list(PacketType)), st.binary(max_size=600)), min_size=2, max_size=8)


def _mutate(frame: bytes, data) -> bytes:
    """One damaging mutation of a frame (its trailing delimiter included)."""
    b = bytearray(frame)
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "replace"]))
    at = data.draw(st.integers(0, len(b) - 1))
    if kind == "flip":
        b[at] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del b[at:]
    elif kind == "insert":
        b[at:at] = data.draw(st.binary(min_size=1, max_size=20))
    elif kind == "delete":
        del b[at : at + data.draw(st.integers(1, 20))]
    else:
        b[at] = (b[at] + data.draw(st.integers(1, 255))) % 256
    return bytes(b)


@SETTINGS
@given(packet_specs, st.data())
def test_round_trip_of_random_payloads_in_any_chunking(specs, data):
    frames = [encode_packet(t, p, sequence=i, timestamp_us=i) for i, (t, p) in enumerate(specs)]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    dec = StreamDecoder()
    got = [p for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) for p in dec.feed(stream[a:b])]
    assert [(p.type, p.payload) for p in got] == specs


@SETTINGS
@given(packet_specs, st.data())
def test_mutated_streams_lose_at_most_the_damaged_packet(specs, data):
    frames = [encode_packet(t, p, sequence=i, timestamp_us=i) for i, (t, p) in enumerate(specs)]
    victim = data.draw(st.integers(0, len(frames) - 1))
    frames[victim] = _mutate(frames[victim], data)
    garbage_at = data.draw(st.integers(0, len(frames)))
    garbage = data.draw(st.binary(max_size=50))
    frames.insert(garbage_at, garbage)
    stream = b"".join(frames)
    dec = StreamDecoder()
    try:
        got = dec.feed(stream) + dec.finish()
    except ProtocolError:
        raise AssertionError("damaged input must be counted, not raised") from None
    by_sequence = {}
    for p in got:
        by_sequence.setdefault(p.sequence, []).append((p.type, p.payload))
    for i, spec in enumerate(specs):
        if i != victim:
            assert by_sequence.get(i) == [spec], f"lost intact packet {i}"
    assert set(by_sequence) <= set(range(len(specs)))
    if victim in by_sequence:  # only an undamaged copy may come through
        assert by_sequence[victim] == [specs[victim]]
