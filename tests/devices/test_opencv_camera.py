"""OpenCV camera on real files: simulated mosaic recordings read back through cv2.VideoCapture.

Small frames (a 100x130 window of the 5x5 mosaic sensor = 20x26 cube) and few frames keep it fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from xenoedge.calibration.calibrator import FrameCalibrator
from xenoedge.calibration.capture import capture_reference
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.references import References
from xenoedge.devices.open_camera import camera_from_spec
from xenoedge.devices.opencv_camera import OpenCVCamera, frame_fit_problem
from xenoedge.devices.recording import read_recording_info, record

from xenoedge.errors import CameraError, CameraExhaustedError

SIM = "sim:crop?species=wheat&seed=3&size=100x130"
N_FRAMES = 4


class FakeClock:
    """Monotonic nanoseconds that only move when the camera sleeps (or the test advances them)."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.ns += int(seconds * 1e9)


@pytest.fixture(scope="module")
def sim_frames():
    """The frames, labels and ground-truth reflectance the simulated camera delivers."""
    with camera_from_spec(SIM) as cam:
        frames = [cam.read() for _ in range(N_FRAMES)]
        truth = cam.ground_truth()[0].copy()
    return frames, truth


@pytest.fixture(scope="module")
def png_recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("png") / "rec"
    record(camera_from_spec(SIM), out, N_FRAMES, camera_text=SIM, references=2)
    return out


@pytest.fixture(scope="module")
def mkv_recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mkv") / "rec"
    record(camera_from_spec(SIM), out, N_FRAMES, video=True, fps=5.0, camera_text=SIM)
    return out


def read_all(cam) -> list:
    frames = []
    with cam:
        while True:
            try:
                frames.append(cam.read())
            except CameraExhaustedError:
                return frames


@pytest.mark.parametrize("target", ["%05d.png", "frames.mkv"])
def test_recording_reads_back_bit_exact_with_labels(target, png_recording, mkv_recording, sim_frames):
    folder = png_recording if target.endswith(".png") else mkv_recording
    cam = camera_from_spec(f"file:{folder / target}")
    assert isinstance(cam, OpenCVCamera)
    assert cam.sensor.raw_shape == (100, 130) and cam.sensor.name == "mosaic-5x5-nir"
    assert cam.camera_id == "file-rec"
    frames = read_all(cam)
    expected, _ = sim_frames
    assert len(frames) == N_FRAMES
    for got, want in zip(frames, expected, strict=True):
        assert got.kind == "mosaic_raw" and got.data.dtype == np.uint16
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(got.labels, want.labels)
    media = [f.meta["media_time_ms"] for f in frames]
    step = 100.0 if target.endswith(".png") else 200.0  # recorded at 10 and 5 frames/s
    np.testing.assert_allclose(media, [i * step for i in range(N_FRAMES)])


def test_a_recording_folder_plays_what_camera_json_names(png_recording, mkv_recording, tmp_path):
    assert camera_from_spec(f"file:{png_recording}").source == str(png_recording / "%05d.png")
    assert camera_from_spec(f"file:{mkv_recording}").source == str(mkv_recording / "frames.mkv")
    with pytest.raises(CameraError, match=r"is a folder without camera.json; give a video or a pattern like"):
        camera_from_spec(f"file:{tmp_path}?profile=mosaic-5x5-nir")


def test_recording_is_reproducible_from_the_seed(tmp_path, png_recording):
    record(camera_from_spec(SIM), tmp_path / "again", 2)
    for i in range(2):
        a = cv2.imread(str(png_recording / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "again" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert a.dtype == np.uint16 and a.shape == (100, 130)
        np.testing.assert_array_equal(a, b)
    info = read_recording_info(png_recording)
    assert info["profile"] == "mosaic-5x5-nir" and info["size"] == "100x130" and info["frames"] == N_FRAMES
    assert info["camera"] == SIM and info["labels"] == "labels/%05d.png"


def test_file_frames_calibrate_to_the_simulated_reflectance(png_recording, sim_frames):
    """Recorded references and scene frames go through the profile's demosaicing and the calibrator."""
    _, truth = sim_frames
    with camera_from_spec(f"file:{png_recording}/%05d.png") as cam:
        dark = capture_reference(cam, "dark", 3)  # 2 recorded frames, played in a loop
        white = capture_reference(cam, "white", 2)
        assert not dark.fallback and not white.fallback and dark.camera_id == "file-rec"
        refs = References(cam.camera_id, cam.sensor.name, cam.sensor.signature, dark=dark.mean, white=white.mean)
        frame = cam.read()
        assert cube_from_mosaic(frame.data, cam.sensor).shape == (20, 26, 25)
        with FrameCalibrator(refs, cam.sensor) as calibrator:
            result = calibrator.process(frame.data)
    error = np.abs(result.reflectance - truth)[result.valid]
    assert result.valid.mean() > 0.9
    assert np.median(error) < 0.03, np.median(error)


def test_recorded_references_are_the_simulated_ones(png_recording):
    with camera_from_spec(SIM) as sim, camera_from_spec(f"file:{png_recording}/%05d.png") as cam:
        for _ in range(N_FRAMES):  # the recorder took the references after the scene frames
            sim.read()
        for kind in ("dark", "white"):
            for _ in range(2):
                want = sim.read_reference(kind)
                got = cam.read_reference(kind)
                assert got.meta["reference"] == kind and got.kind == "mosaic_raw"
                np.testing.assert_array_equal(got.data, want.data)
    bare = camera_from_spec(f"file:{png_recording}/%05d.png", camera_from_spec(SIM).sensor)
    bare.reference_patterns = {}
    with bare, pytest.raises(CameraError, match="cannot capture a white reference itself; point it at a white tile"):
        bare.read_reference("white")


def test_crosstalk_matrix_from_the_camera_string_reaches_the_calibrator(tmp_path, png_recording):
    mixing = np.eye(25) + 0.05 * np.eye(25, k=1) + 0.05 * np.eye(25, k=-1)
    np.save(tmp_path / "xt.npy", np.linalg.inv(mixing))
    cam = camera_from_spec(f"file:{png_recording}/%05d.png?crosstalk={tmp_path / 'xt.npy'}")
    np.testing.assert_allclose(cam.crosstalk, np.linalg.inv(mixing), rtol=1e-5)
    np.save(tmp_path / "bad.npy", np.eye(3))
    with pytest.raises(CameraError, match=r"crosstalk matrix must be \(25, 25\)"):
        camera_from_spec(f"file:{png_recording}/%05d.png?crosstalk={tmp_path / 'bad.npy'}")


def test_loop_and_pacing_use_the_injected_clock(png_recording):
    clock = FakeClock()
    cam = OpenCVCamera(
        camera_from_spec(f"file:{png_recording}/%05d.png").sensor,
        str(png_recording / "%05d.png"),
        mode="images",
        fps=20.0,
        loop=True,
        clock_ns=clock,
        sleep=clock.sleep,
    )
    with cam:
        frames = [cam.read() for _ in range(N_FRAMES + 2)]
    assert [f.meta["loop_pass"] for f in frames] == [0] * N_FRAMES + [1, 1]
    np.testing.assert_array_equal(frames[N_FRAMES].data, frames[0].data)
    stamps = np.diff([f.timestamp_us for f in frames])
    # one frame every 50 ms, except across the loop, where the reopened pass starts at once
    assert list(stamps[: N_FRAMES - 1]) == [50_000] * (N_FRAMES - 1)
    assert all(f.meta["timestamp_source"] == "host" for f in frames)


def test_missing_sequence_is_a_clear_error(tmp_path):
    cam = camera_from_spec(f"file:{tmp_path}/nothing/%05d.png?profile=mosaic-5x5-nir")
    with pytest.raises(
        CameraError, match=r"no image file matches the sequence pattern .*nothing/%05d.png.*does not exist"
    ):
        cam.open()
    with pytest.raises(CameraError, match="no such video file"):
        camera_from_spec(f"file:{tmp_path}/scan.mkv?profile=mosaic-5x5-nir").open()


def test_a_text_file_is_not_a_video(tmp_path):
    text = tmp_path / "notes.mkv"
    text.write_text("field 3, plot 7: wheat, stressed at the north edge\n" * 50)
    with pytest.raises(CameraError, match=r"file:.*notes.mkv.*(cannot open|unsupported pixel format|not lossless)"):
        camera_from_spec(f"file:{text}?profile=mosaic-5x5-nir").open()
    plain = tmp_path / "notes.txt"
    plain.write_text("hello\n" * 100)
    with pytest.raises(CameraError, match=r"unsupported pixel format 'PAL.' .*codec 'ansi'"):
        camera_from_spec(f"file:{plain}?profile=mosaic-5x5-nir").open()


def test_a_lossy_or_colour_video_is_refused(tmp_path):
    path = tmp_path / "colour.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (130, 100))
    assert writer.isOpened()
    for _ in range(2):
        writer.write(np.zeros((100, 130, 3), np.uint8))
    writer.release()
    with pytest.raises(CameraError, match=r"unsupported pixel format .*codec 'mjpg'"):
        camera_from_spec(f"file:{path}?profile=mosaic-5x5-nir").open()


def test_colour_and_float_images_are_unsupported_pixel_formats(tmp_path):
    seq = tmp_path / "rgb"
    seq.mkdir()
    cv2.imwrite(str(seq / "00000.png"), np.zeros((100, 130, 3), np.uint8))
    cam = camera_from_spec(f"file:{seq}/%05d.png?profile=mosaic-5x5-nir&size=100x130")
    with cam, pytest.raises(CameraError, match=r"unsupported pixel format: 3-channel uint8 image"):
        cam.read()


def test_frame_size_that_does_not_fit_the_mosaic(tmp_path):
    seq = tmp_path / "odd"
    seq.mkdir()
    for i in range(2):
        cv2.imwrite(str(seq / f"{i:05d}.png"), np.full((101, 130), 40, np.uint16))
    cam = camera_from_spec(f"file:{seq}/%05d.png?profile=mosaic-5x5-nir")
    with cam, pytest.raises(CameraError, match=r"frame is 101x130, which does not fit the 5x5 mosaic pattern"):
        cam.read()
    with pytest.raises(CameraError, match=r"size 101x130 does not fit the 5x5 mosaic pattern"):
        camera_from_spec(f"file:{seq}/%05d.png?profile=mosaic-5x5-nir&size=101x130")
    # a whole number of super-pixels, but not the profile's size: say how to declare the window
    assert "add size=100x125" in frame_fit_problem((100, 125), camera_from_spec("sim:crop").sensor)


def test_an_undecodable_frame_raises_once_and_is_skipped(tmp_path, png_recording):
    seq = tmp_path / "seq"
    shutil.copytree(png_recording, seq)
    (seq / "00001.png").write_bytes(b"not a png")
    cam = camera_from_spec(f"file:{seq}/%05d.png")
    with cam:
        first = cam.read()
        with pytest.raises(CameraError, match=r"cannot decode .*00001.png"):
            cam.read()
        after = cam.read()
        assert after.meta["source_frame"] == 2 and first.meta["source_frame"] == 0
        np.testing.assert_array_equal(after.labels, cv2.imread(str(seq / "labels/00002.png"), cv2.IMREAD_UNCHANGED))


def test_reopen_after_the_source_vanished_and_came_back(tmp_path, png_recording):
    """The daemon's recovery: close, reopen until the source is back, then frames flow again."""
    seq = tmp_path / "seq"
    shutil.copytree(png_recording, seq)
    cam = camera_from_spec(f"file:{seq}/%05d.png")
    cam.open()
    cam.read()
    cam.close()
    hidden = tmp_path / "hidden"
    seq.rename(hidden)
    with pytest.raises(CameraError, match="no image file matches"):
        cam.open()
    assert not cam.is_open
    hidden.rename(seq)
    cam.open()
    assert cam.read().meta["source_frame"] == 0
    cam.close()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("v4l2:/dev/null?profile=mosaic-5x5-nir", r"v4l2:/dev/null.*cannot open /dev/null: not a video capture device"),
        ("v4l2:/dev/video97?profile=mosaic-5x5-nir", r"no such device /dev/video97"),
        ("v4l2:97?profile=mosaic-5x5-nir", r"no such device /dev/video97"),
    ],
)
def test_a_device_that_is_not_a_camera(spec, match):
    cam = camera_from_spec(spec)
    with pytest.raises(CameraError, match=match):
        cam.open()
    assert not cam.is_open


def test_a_regular_file_as_v4l2_device(tmp_path):
    path = tmp_path / "video0"
    path.write_text("not a device")
    with pytest.raises(CameraError, match="is not a device node"):
        camera_from_spec(f"v4l2:{path}?profile=mosaic-5x5-nir").open()


def test_unsupported_pixel_format_is_refused_by_name():
    with pytest.raises(CameraError, match=r"unsupported pixel format 'YUYV'; supported raw mono formats: GREY, Y10"):
        camera_from_spec("v4l2:/dev/video0?profile=mosaic-5x5-nir&fourcc=YUYV")


def test_only_mosaic_profiles_stream_through_opencv():
    with pytest.raises(CameraError, match="tivita is not a snapshot-mosaic sensor"):
        camera_from_spec("file:scan.mkv?profile=tivita")


def test_8_bit_sequences_and_videos_widen_to_counts(tmp_path):
    frames = np.random.default_rng(5).integers(0, 256, (2, 100, 130), dtype=np.uint8)
    (tmp_path / "seq").mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / "seq" / f"{i:05d}.png"), frame)
    writer = cv2.VideoWriter(
        str(tmp_path / "grey.mkv"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 5.0, (130, 100),
        [cv2.VIDEOWRITER_PROP_IS_COLOR, 0],
    )  # fmt: skip
    for frame in frames:
        writer.write(frame)
    writer.release()
    for target in (f"{tmp_path}/seq/%05d.png", f"{tmp_path}/grey.mkv"):
        got = read_all(camera_from_spec(f"file:{target}?profile=mosaic-5x5-nir&size=100x130"))
        assert [f.data.dtype for f in got] == [np.uint16, np.uint16]
        np.testing.assert_array_equal(np.stack([f.data for f in got]), frames)
        assert all(f.labels is None for f in got)


def test_shift_undoes_msb_aligned_counts(tmp_path, png_recording, sim_frames):
    (tmp_path / "msb").mkdir()
    expected, _ = sim_frames
    cv2.imwrite(str(tmp_path / "msb" / "00000.png"), expected[0].data << 6)  # 10-bit counts sent as Y16
    frame = read_all(camera_from_spec(f"file:{tmp_path}/msb/%05d.png?profile=mosaic-5x5-nir&size=100x130&shift=6"))[0]
    np.testing.assert_array_equal(frame.data, expected[0].data)
