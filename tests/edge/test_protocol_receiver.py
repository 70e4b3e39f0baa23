"""Host receiver: mask pictures every N frames, live stats, fed with bytes from encode_packet."""

import numpy as np
import pytest
from xenoedge.devices.formats.label_png import colorize
from xenoedge.edge.protocol import (
    PacketEncoder,
    PacketType,
    ProtocolError,
    error_payload,
    hello_payload,
    log_payload,
    mask_payload,
    status_payload,
)
from xenoedge.edge.protocol.receiver import Receiver, default_palette, run_listen
from xenoedge.xeno.previews import LEGEND_PX, PAD_PX, PANEL_TOP_PX, enlarged

MODEL_ID = bytes(16)
COLORS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)


def _stream(n_masks: int, fps: float = 25.0):
    t = iter(int(i * 1e6 / fps) for i in range(10_000))
    enc = PacketEncoder(clock_us=lambda: next(t))
    hello = {"device_id": "d", "camera_id": "c", "sensor_signature": "s", "bundle_name": "b",
             "bundle_version": "1", "model_id": MODEL_ID.hex(),
             "labels": [{"id": i, "name": str(i), "color": c.tolist()} for i, c in enumerate(COLORS)]}  # fmt: skip
    frames = [enc.encode(PacketType.HELLO, hello_payload(hello))]
    masks = []
    for i in range(n_masks):
        classes = np.zeros((12, 16), np.uint8)
        classes[i % 12 :, : 1 + i % 16] = 1 + i % 2
        masks.append(classes)
        frames.append(enc.encode(PacketType.MASK, mask_payload(classes, frame_index=i, model_id=MODEL_ID, n_classes=3)))
    frames.append(enc.encode(PacketType.STATUS, status_payload(uptime_s=1, fps=fps, frames=n_masks,
                                                               dropped_frames=0, model_id=MODEL_ID)))  # fmt: skip
    frames.append(enc.encode(PacketType.LOG, log_payload(20, "hello")))
    frames.append(enc.encode(PacketType.ERROR, error_payload(3, "NaN frame")))
    return frames, masks


@pytest.mark.parametrize("colors", [COLORS, None])  # None: the HELLO's label colours
def test_receiver_writes_every_nth_mask_in_colour_and_keeps_stats(tmp_path, colors):
    import cv2

    frames, masks = _stream(10)
    rx = Receiver(tmp_path / "out", colors, every=3)
    seen = []
    stats = run_listen(frames, rx, seen.append, interval_s=0.0)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"mask_{i:08d}.png" for i in (0, 3, 6, 9)]
    picture = cv2.imread(str(tmp_path / "out" / "mask_00000003.png"))[..., ::-1]
    mask = enlarged(colorize(masks[3], COLORS))  # 12x16 enlarged 17x: one panel under the title bars
    assert picture.shape == (PANEL_TOP_PX + mask.shape[0], mask.shape[1] + PAD_PX + LEGEND_PX, 3)
    np.testing.assert_array_equal(picture[PANEL_TOP_PX:, : mask.shape[1]], mask)
    legend = picture[:, -LEGEND_PX:].reshape(-1, 3)
    for color in COLORS:  # every class colour has its swatch in the legend
        assert (legend == color).all(axis=1).sum() >= 100
    assert (stats.masks, stats.images_written, stats.device_errors, stats.crc_errors) == (10, 4, 1, 0)
    assert stats.fps == pytest.approx(25.0) and stats.last_mask_bytes > 0
    assert stats.device["device_id"] == "d" and stats.status["frames"] == 10
    assert "NaN frame" in stats.last_error and (20, "hello") in rx.log
    assert len(seen) == len(frames) + 1 and seen[-1] == stats
    assert "masks 10" in stats.line()


def test_receiver_counts_damage_and_drops(tmp_path):
    frames, _ = _stream(20)
    frames[5] = frames[5][:10] + b"\xff" + frames[5][11:]
    del frames[8:10]
    stream = b"".join(frames)
    chunks = [stream[i : i + 64] for i in range(0, len(stream), 64)] + [b""]
    stats = run_listen(chunks, Receiver(None))
    assert stats.masks == 17 and stats.crc_errors + stats.framing_errors == 1
    assert stats.missing_packets == 3 and stats.sequence_gaps == 2


def test_receiver_extends_short_palettes_and_stops_at_max_masks(tmp_path):
    frames, _ = _stream(6)
    stats = run_listen(frames[1:], Receiver(tmp_path, COLORS[:1]), max_masks=2)
    assert stats.masks == 2 and stats.images_written == 2
    assert default_palette(40).shape == (40, 3) and not default_palette(3)[0].any()
    with pytest.raises(ProtocolError):
        Receiver(tmp_path, every=0)


def test_receiver_pictures_the_frame_under_the_mask_when_it_has_it(tmp_path):
    import cv2

    frames, masks = _stream(1)
    rgb = np.full((12, 16, 3), 200, np.uint8)
    rx = Receiver(tmp_path, None, frame_rgb=lambda index: rgb if index == 0 else None)
    run_listen(frames, rx)
    picture = cv2.imread(str(tmp_path / "mask_00000000.png"))[..., ::-1]
    panel = enlarged(rgb)
    ph, pw, _ = panel.shape
    assert picture.shape == (PANEL_TOP_PX + ph, 2 * (pw + PAD_PX) + LEGEND_PX, 3)  # frame | mask over frame
    np.testing.assert_array_equal(picture[PANEL_TOP_PX:, :pw], panel)
    over = picture[PANEL_TOP_PX:, pw + PAD_PX : 2 * pw + PAD_PX]
    painted = enlarged(masks[0]) > 0
    assert (over[~painted] == 200).all() and not (over[painted] == 200).all(axis=1).any()
