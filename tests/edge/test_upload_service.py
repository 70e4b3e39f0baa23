"""The device's flashing service fed garbage: random payloads in every flashing packet type
(CRC-valid, so they reach the service) never raise out of ``handle`` and never touch the slots."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xenoedge.edge.flashing.install import InstallPolicy
from xenoedge.edge.flashing.service import FlashService
from xenoedge.edge.flashing.slots import SlotStore
from xenoedge.edge.flashing.upload import UploadLimits
from xenoedge.edge.protocol.flash import (
    FlashCode,
    decode_result,
    decode_upload_ack,
    upload_begin_payload,
    upload_chunk_payload,
)
from xenoedge.edge.protocol.packets import Packet, PacketType

FLASH_TYPES = [
    PacketType.UPLOAD_BEGIN,
    PacketType.UPLOAD_CHUNK,
    PacketType.UPLOAD_END,
    PacketType.INFO_REQUEST,
    PacketType.ROLLBACK_REQUEST,
    PacketType.UPLOAD_ACK,  # device-to-host types arriving at the device are ignored
    PacketType.INFO,
]


def service(tmp_path):
    replies = []
    store = SlotStore(tmp_path / "state")

    def activate(slot, why):
        raise AssertionError("nothing valid was uploaded")

    svc = FlashService(
        store,
        InstallPolicy(allow_unsigned=True),  # uploads go through; tests/edge/test_secure_default.py: none
        send=lambda ptype, payload: replies.append((ptype, payload)),
        activate=activate,
        limits=UploadLimits(max_bundle_bytes=4096, max_chunk=512, reserve_bytes=0),
    )
    return svc, store, replies


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(FLASH_TYPES), st.binary(max_size=120)), min_size=1, max_size=12))
def test_random_flashing_packets_get_answers_not_exceptions(tmp_path_factory, packets):
    svc, store, replies = service(tmp_path_factory.mktemp("svc"))
    for sequence, (ptype, payload) in enumerate(packets):
        svc.handle(Packet(ptype, sequence, 0, payload))
        svc.wait(10)
    for ptype, payload in replies:  # every answer is a well-formed packet of a reply type
        if ptype == PacketType.UPLOAD_ACK:
            decode_upload_ack(payload)
        elif ptype in (PacketType.UPLOAD_RESULT, PacketType.ROLLBACK_RESULT):
            assert decode_result(payload).code != FlashCode.OK or ptype == PacketType.UPLOAD_RESULT
    assert store.active() is None and not list(store.slots_dir.iterdir())


def test_an_upload_of_garbage_is_refused_as_a_bundle_and_nothing_is_installed(tmp_path):
    svc, store, replies = service(tmp_path)
    data = bytes(range(256)) * 8
    sha = hashlib.sha256(data).digest()
    svc.handle(Packet(PacketType.UPLOAD_BEGIN, 0, 0, upload_begin_payload(len(data), sha, "9.9.9")))
    for i, offset in enumerate(range(0, len(data), 512)):
        svc.handle(Packet(PacketType.UPLOAD_CHUNK, i + 1, 0, upload_chunk_payload(offset, data[offset : offset + 512])))
    svc.handle(Packet(PacketType.UPLOAD_END, 99, 0, sha))
    svc.wait(30)
    acks = [decode_upload_ack(p) for t, p in replies if t == PacketType.UPLOAD_ACK]
    assert [a.next_offset for a in acks] == [0, 512, 1024, 1536, 2048, 2048]  # BEGIN, 4 chunks, END accepted
    result = decode_result(next(p for t, p in replies if t == PacketType.UPLOAD_RESULT))
    assert result.code == FlashCode.BAD_BUNDLE and result.message
    assert store.active() is None and not list(store.slots_dir.iterdir())
    assert not list(store.uploads_dir.iterdir())  # the received file is gone too
