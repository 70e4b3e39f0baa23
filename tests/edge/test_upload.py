"""The device's upload state machine on real files: resume (also after a restart), fsync policy, limits, checks."""

from __future__ import annotations

import hashlib
import json

import pytest
from xenoedge.edge.flashing.upload import STATE_NAME, UploadError, UploadLimits, UploadManager
from xenoedge.edge.protocol.flash import FlashCode, UploadBegin, UploadChunk

DATA = bytes(range(256)) * 300  # 76800 bytes
SHA = hashlib.sha256(DATA).digest()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def manager(tmp_path, clock=None, **limits):
    limits.setdefault("fsync_bytes", 16384)
    limits.setdefault("reserve_bytes", 0)
    return UploadManager(tmp_path / "uploads", UploadLimits(**limits), clock=clock or Clock())


def send(m, start, stop, size=4096):
    ack = m.ack()
    for offset in range(start, stop, size):
        ack = m.chunk(UploadChunk(offset, DATA[offset : min(offset + size, stop)]))
        assert ack.code == FlashCode.OK
    return ack


def test_upload_in_chunks_then_complete_gives_the_exact_file(tmp_path):
    m = manager(tmp_path)
    assert m.begin(UploadBegin(len(DATA), SHA, "1.1.0")).next_offset == 0
    ack = send(m, 0, len(DATA))
    assert ack.next_offset == ack.total_size == len(DATA)
    path = m.complete(SHA)
    assert path.read_bytes() == DATA and m.session is None and not (tmp_path / "uploads" / STATE_NAME).exists()


def test_chunk_at_the_wrong_offset_is_answered_with_the_expected_one(tmp_path):
    m = manager(tmp_path)
    m.begin(UploadBegin(len(DATA), SHA, ""))
    send(m, 0, 8192)
    ack = m.chunk(UploadChunk(12288, DATA[12288:16384]))  # one chunk was lost
    assert (ack.code, ack.next_offset) == (FlashCode.OFFSET, 8192)
    ack = m.chunk(UploadChunk(4096, DATA[4096:8192]))  # a resend of a chunk already held
    assert (ack.code, ack.next_offset) == (FlashCode.OFFSET, 8192)


def test_restart_resumes_from_the_durable_offset_not_the_acknowledged_one(tmp_path):
    m = manager(tmp_path)
    m.begin(UploadBegin(len(DATA), SHA, "1.1.0"))
    ack = send(m, 0, 28672)  # 7 chunks; fsynced at 16384 only
    assert ack.next_offset == 28672
    state = json.loads((tmp_path / "uploads" / STATE_NAME).read_text())
    assert state["durable"] == 16384  # what a power cut keeps
    del m  # the process dies without close()
    again = manager(tmp_path)
    begin = again.begin(UploadBegin(len(DATA), SHA, "1.1.0"))  # the host asks where to go on
    assert begin.next_offset == 16384
    send(again, 16384, len(DATA))
    assert again.complete(SHA).read_bytes() == DATA


def test_clean_close_keeps_everything_received(tmp_path):
    m = manager(tmp_path)
    m.begin(UploadBegin(len(DATA), SHA, ""))
    send(m, 0, 28672)
    m.close()
    assert manager(tmp_path).begin(UploadBegin(len(DATA), SHA, "")).next_offset == 28672


def test_wrong_sha256_drops_the_upload(tmp_path):
    m = manager(tmp_path)
    wrong = hashlib.sha256(b"other").digest()
    m.begin(UploadBegin(len(DATA), wrong, ""))
    send(m, 0, len(DATA))
    with pytest.raises(UploadError, match="hash to") as err:
        m.complete(wrong)
    assert err.value.code == FlashCode.SHA256_MISMATCH and m.session is None
    assert not list((tmp_path / "uploads").iterdir())


def test_one_upload_at_a_time_until_it_times_out(tmp_path):
    clock = Clock()
    m = manager(tmp_path, clock, timeout_s=30)
    m.begin(UploadBegin(len(DATA), SHA, "a"))
    send(m, 0, 4096)
    other = UploadBegin(100, hashlib.sha256(b"x" * 100).digest(), "b")
    with pytest.raises(UploadError, match="in progress") as err:
        m.begin(other)
    assert err.value.code == FlashCode.BUSY
    clock.now += 31
    assert m.begin(other).total_size == 100  # the idle one was dropped
    with pytest.raises(UploadError, match="idle") as err:  # its host learns why
        m.complete(SHA)
    assert err.value.code == FlashCode.TIMEOUT


def test_limits_and_misuse(tmp_path):
    m = manager(tmp_path, max_bundle_bytes=50000, max_chunk=4096)
    with pytest.raises(UploadError, match="exceeds") as err:
        m.begin(UploadBegin(len(DATA), SHA, ""))
    assert err.value.code == FlashCode.TOO_LARGE
    with pytest.raises(UploadError) as err:
        m.chunk(UploadChunk(0, b"x"))
    assert err.value.code == FlashCode.NO_UPLOAD
    small = DATA[:40000]
    m.begin(UploadBegin(len(small), hashlib.sha256(small).digest(), ""))
    with pytest.raises(UploadError) as err:
        m.chunk(UploadChunk(0, DATA[:4097]))
    assert err.value.code == FlashCode.TOO_LARGE
    with pytest.raises(UploadError, match="send the rest") as err:
        m.complete(hashlib.sha256(small).digest())
    assert err.value.code == FlashCode.BAD_REQUEST


def test_not_enough_free_space_is_refused_at_begin(tmp_path):
    import shutil

    free = shutil.disk_usage(tmp_path).free
    m = manager(tmp_path, reserve_bytes=free)  # asks for more than the disk has
    with pytest.raises(UploadError, match="not enough free space") as err:
        m.begin(UploadBegin(len(DATA), SHA, ""))
    assert err.value.code == FlashCode.NO_SPACE and m.session is None


def test_a_received_bundle_left_by_a_crash_before_its_install_is_removed_at_start(tmp_path):
    m = manager(tmp_path)
    m.begin(UploadBegin(len(DATA), SHA, ""))
    send(m, 0, len(DATA))
    received = m.complete(SHA)
    assert received.exists()  # the device dies before install_bundle read it
    manager(tmp_path)
    assert not received.exists()


def test_damaged_state_file_is_discarded_at_start(tmp_path):
    m = manager(tmp_path)
    m.begin(UploadBegin(len(DATA), SHA, ""))
    (tmp_path / "uploads" / STATE_NAME).write_text("{not json")
    assert manager(tmp_path).session is None


def _upload_forever(folder, started):
    m = UploadManager(folder, UploadLimits(fsync_bytes=8192, reserve_bytes=0))
    m.begin(UploadBegin(len(DATA), SHA, ""))
    started.set()
    offset = m.session.offset
    while offset < len(DATA):
        offset = m.chunk(UploadChunk(offset, DATA[offset : offset + 1024])).next_offset


def test_killed_at_random_points_the_upload_resumes_with_exactly_the_bytes_it_recorded(tmp_path):
    import multiprocessing
    import os
    import random
    import signal

    ctx = multiprocessing.get_context("fork")
    rng = random.Random(7)
    resumed = []
    for i in range(25):
        folder = tmp_path / f"u{i}"
        started = ctx.Event()
        child = ctx.Process(target=_upload_forever, args=(folder, started))
        child.start()
        assert started.wait(10)
        time_s = rng.uniform(0.0, 0.02)
        child.join(time_s)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # the device dies at an arbitrary point
        child.join(10)
        m = UploadManager(folder, UploadLimits(fsync_bytes=8192, reserve_bytes=0))  # the next start
        if m.session is None:  # discarded: nothing half-trusted stays
            continue
        held = m.session.offset
        resumed.append(held)
        assert held % 8192 == 0 or held == len(DATA)  # only fsynced, recorded offsets survive
        assert (folder / "upload.part").read_bytes()[:held] == DATA[:held]  # every recorded byte is right
        assert m.begin(UploadBegin(len(DATA), SHA, "")).next_offset == held
        send(m, held, len(DATA), size=1024)
        assert m.complete(SHA).read_bytes() == DATA
    assert any(0 < held < len(DATA) for held in resumed), resumed  # some kills did land mid-upload
