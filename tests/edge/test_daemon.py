"""The daemon end to end on the simulated mosaic camera and a real exported bundle, with faults."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from daemon_fixtures import (  # noqa: F401  (fixtures)
    SENSOR,
    FaultyCamera,
    crop_bundle_fixture,
    jetson_bundles_fixture,
)
from xenoedge.calibration.store import load_references, save_references
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.edge.config import ConfigError, DaemonConfig, load_config
from xenoedge.edge.daemon import Daemon, DaemonError, DropOldestQueue, daemon_main, run_daemon
from xenoedge.edge.engines import EngineError
from xenoedge.edge.sdnotify import SdNotifier
from xenoedge.edge.sinks import CollectingSink, PngSink
from xenoedge.export.bundle import (
    IncompatibleBundleError,
    IntegrityError,
    SignatureError,
    generate_keypair,
    save_public_key,
    sign_bundle,
)

from xenoedge.errors import CalibrationError, UnknownNameError
from xenoedge.sensors import get_sensor

REPO = Path(__file__).resolve().parents[2]


def camera(seed=2, **kw):
    return SimulatedCamera(get_sensor(SENSOR), domain="crop", species=("tomato", "wheat"), seed=seed, **kw)


def config(bundle, **kw):
    kw.setdefault("capture_frames", 2)
    return DaemonConfig(bundle=bundle, camera="sim:crop", **kw)


def test_daemon_sends_masks_with_dsc_status_and_hello_after_the_selftest(crop_bundle):
    sink, ready = CollectingSink(), []
    daemon = Daemon(
        config(crop_bundle, score_ground_truth=True, status_interval_s=0.2),
        sink,
        camera=camera(),
        ready_callback=lambda: ready.append(daemon.selftest_agreement),
    )
    with daemon:
        stats = daemon.run(max_frames=12)
    assert ready == [1.0]  # READY only after the self-test passed
    kinds = [kind for kind, _ in sink.events]
    assert kinds[0] == "hello" and kinds[-1] == "status" and sink.flushed == 1
    hello = sink.of("hello")[0]
    assert hello["model_id"] == "crop@0.1.0" and (hello["height"], hello["width"]) == (217, 409)
    assert hello["labels"][0]["name"] == "soil"
    masks = sink.of("mask")
    assert len(masks) == stats.masks == 12 and not sink.of("error")
    assert all(m["classes"].shape == (217, 409) and m["classes"].dtype == np.uint8 for m in masks)
    assert [m["frame_index"] for m in masks] == sorted(m["frame_index"] for m in masks)
    dsc = [m["dsc"] for m in masks]
    assert all(0.0 <= d <= 1.0 for d in dsc) and np.mean(dsc) > 0.6, dsc  # crop model on fresh scenes
    status = sink.of("status")[-1]
    assert status["frames"] == 12 and status["errors"] == 0 and status["fps"] > 0
    assert status["dropped"] == stats.dropped and status["uptime_s"] > 0
    assert status["mean_dsc"] == pytest.approx(np.mean(dsc))


class SlowMaskSink(CollectingSink):
    """Takes 20 ms to send a mask (a slow link), so the ``send`` stage has a known floor."""

    def send(self, kind, **fields):
        if kind == "mask":
            time.sleep(0.02)
        super().send(kind, **fields)


def test_stage_timing_is_recorded_per_mask_only_when_switched_on(crop_bundle):
    with Daemon(config(crop_bundle), SlowMaskSink(), camera=camera()) as daemon:
        daemon.stats.stage_ns = {}
        stats = daemon.run(max_frames=4)
    stages = stats.stage_ns
    assert {"capture", "calibrate", "infer", "send"} <= set(stages)
    assert len(stages["calibrate"]) == len(stages["infer"]) == len(stages["send"]) == stats.masks == 4
    assert len(stages["capture"]) >= 4 and min(stages["capture"]) > 0 and min(stages["infer"]) > 0
    assert min(stages["send"]) >= 20_000_000  # the sink's 20 ms is in the send stage, not elsewhere
    with Daemon(config(crop_bundle), CollectingSink(), camera=camera()) as daemon:
        assert daemon.run(max_frames=2).stage_ns is None  # off by default: nothing grows on a device


def test_hello_is_repeated_for_receivers_that_attach_late(crop_bundle):
    from xenoedge.edge.daemon import HELLO_EVERY_STATUSES

    sink = CollectingSink()
    with Daemon(config(crop_bundle, status_interval_s=1e-6), sink, camera=camera()) as daemon:
        daemon.run(max_frames=2 * HELLO_EVERY_STATUSES + 1)
    statuses = len(sink.of("status"))
    assert statuses >= 2 * HELLO_EVERY_STATUSES
    assert len(sink.of("hello")) == 1 + statuses // HELLO_EVERY_STATUSES


def test_slow_sink_makes_the_queue_drop_oldest_frames_and_status_counts_them(crop_bundle):
    def slow(kind, fields):
        if kind == "mask":
            time.sleep(0.15)

    sink = CollectingSink(on_send=slow)
    with Daemon(config(crop_bundle, queue_size=1), sink, camera=camera(fps=50)) as daemon:
        stats = daemon.run(max_frames=6)
    assert stats.dropped > 0 and sink.of("status")[-1]["dropped"] == stats.dropped
    indices = [m["frame_index"] for m in sink.of("mask")]
    assert len(indices) == 6 and indices[-1] - indices[0] > 5  # frames in between were dropped


def test_on_demand_camera_is_read_only_when_the_queue_has_room(crop_bundle):
    """A simulator without a frame rate renders when asked: the capture thread waits for room
    instead of rendering frames it would drop (they would take the CPU the engine needs)."""
    sink = CollectingSink(on_send=lambda kind, fields: time.sleep(0.05) if kind == "mask" else None)
    cam = camera()
    assert cam.on_demand and not camera(fps=50).on_demand
    with Daemon(config(crop_bundle, queue_size=1), sink, camera=cam) as daemon:
        stats = daemon.run(max_frames=6)
    indices = [m["frame_index"] for m in sink.of("mask")]
    assert stats.dropped == 0 and indices == list(range(indices[0], indices[0] + 6))  # every frame, in order


def test_drop_oldest_queue():
    q = DropOldestQueue(2)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and [q.get(0), q.get(0), q.get(0)] == [3, 4, None]


def test_tampered_bundle_is_refused_before_anything_runs(crop_bundle, tmp_path):
    data = bytearray(crop_bundle.read_bytes())
    at = data.index(b"ir_version") if b"ir_version" in data else len(data) // 2
    data[at + 40] ^= 0x01
    bad = tmp_path / "tampered.xeb"
    bad.write_bytes(bytes(data))
    ready = []
    with pytest.raises(IntegrityError, match="models/"):
        Daemon(config(bad), CollectingSink(), camera=camera(), ready_callback=lambda: ready.append(1)).start()
    assert not ready


def test_signed_bundle_needs_the_configured_key(crop_bundle, tmp_path):
    private, public = generate_keypair()
    _, other = generate_keypair()
    signed = sign_bundle(crop_bundle, private, out=tmp_path / "signed.xeb")
    key, wrong = save_public_key(tmp_path / "k.pub", public), save_public_key(tmp_path / "o.pub", other)
    with pytest.raises(SignatureError):
        Daemon(config(crop_bundle, public_key=key), CollectingSink(), camera=camera()).start()  # unsigned
    with pytest.raises(SignatureError):
        Daemon(config(signed, public_key=wrong), CollectingSink(), camera=camera()).start()
    with Daemon(config(signed, public_key=key), CollectingSink(), camera=camera()) as daemon:
        assert daemon.run(max_frames=1).masks == 1


def test_bundle_for_another_sensor_is_refused_naming_both_signatures(crop_bundle):
    tivita = get_sensor("tivita")
    with pytest.raises(IncompatibleBundleError) as info:
        Daemon(config(crop_bundle), CollectingSink(), camera=SimulatedCamera(tivita)).start()
    assert get_sensor(SENSOR).signature in str(info.value) and tivita.signature in str(info.value)


def test_camera_errors_are_reported_and_the_camera_is_reopened(crop_bundle):
    cam = FaultyCamera(camera(), {2: "error", 3: "error", 4: "error"})
    sink = CollectingSink()
    with Daemon(config(crop_bundle, capture_references="always"), sink, camera=cam) as daemon:
        stats = daemon.run(max_frames=5)
    errors = [e for e in sink.of("error") if e["code"] == "camera"]
    assert len(errors) == 3 and "USB transfer failed" in errors[0]["message"] and "reopening" in errors[1]["message"]
    assert stats.masks == 5 and stats.errors["camera"] == 3 and cam.opens >= 2
    assert sink.of("status")[-1]["error_counts"] == {"camera": 3}


def test_nan_and_wrong_shape_frames_are_skipped_with_an_error_and_the_daemon_goes_on(crop_bundle):
    # an on-demand camera: the daemon reads a frame only when its queue has room, so no frame (and
    # no fault) is dropped however slow inference is on a busy machine
    cam = FaultyCamera(camera(), {1: "nan", 3: "shape"})
    sink = CollectingSink()
    with Daemon(config(crop_bundle, capture_references="always", queue_size=8), sink, camera=cam) as daemon:
        stats = daemon.run(max_frames=6)
    errors = sink.of("error")
    assert [e["code"] for e in errors] == ["frame", "frame"]
    assert "NaN" in errors[0]["message"] and f"frame {errors[0]['frame_index']}" in errors[0]["message"]
    assert "shape (1083, 2048)" in errors[1]["message"] and "(1088, 2048)" in errors[1]["message"]
    assert stats.skipped == 2 and stats.masks == 4


def test_stop_mid_run_finishes_the_frame_flushes_and_returns(crop_bundle):
    holder = {}

    def stop_at_third(kind, fields):
        if kind == "mask" and len(sink.of("mask")) == 3:
            holder["daemon"].stop()

    sink = CollectingSink(on_send=stop_at_third)
    with Daemon(config(crop_bundle), sink, camera=camera()) as daemon:
        holder["daemon"] = daemon
        stats = daemon.run()
        assert not daemon._capture_thread.is_alive()
    assert stats.masks == 3 and sink.flushed == 1 and sink.events[-1][0] == "status"


def test_reload_swaps_references_from_the_store_without_restart(crop_bundle, tmp_path):
    store = tmp_path / "refs" / "references.npz"
    sink = CollectingSink()
    with Daemon(config(crop_bundle, references=store), sink, camera=camera()) as daemon:
        daemon.run(max_frames=2)
        assert store.is_file()  # captured at start for the simulated camera, then stored
        gain_before = daemon.engine._refs[1].copy()
        refs = load_references(store)
        refs.white = refs.white * 0.5 + refs.dark * 0.5  # half the signal: double gain
        save_references(store, refs)
        assert daemon.reload_references()
        gain_after = daemon.engine._refs[1]
        assert np.median(gain_after / gain_before) == pytest.approx(2.0, rel=1e-3)
        store.write_bytes(b"garbage")
        assert not daemon.reload_references()  # a broken file keeps the previous references
        assert np.array_equal(daemon.engine._refs[1], gain_after)
        daemon.request_reload()  # what SIGHUP does: applied between two frames
        assert daemon.run(max_frames=2).masks == 4
    assert [e["code"] for e in sink.of("error")] == ["references", "references"]


def test_missing_references_for_a_real_camera_are_refused(crop_bundle, tmp_path):
    with pytest.raises(DaemonError, match="xenoedge calibrate dark"):
        Daemon(
            config(crop_bundle, references=tmp_path / "none.npz", capture_references="never"),
            CollectingSink(),
            camera=camera(),
        ).start()


def test_references_of_another_camera_are_refused(crop_bundle, tmp_path):
    store = tmp_path / "refs.npz"
    with Daemon(config(crop_bundle, references=store), CollectingSink(), camera=camera(seed=2)) as daemon:
        daemon.start()
    with pytest.raises(CalibrationError, match="sim-mosaic-5x5-nir-2"):
        Daemon(config(crop_bundle, references=store), CollectingSink(), camera=camera(seed=3)).start()


@pytest.fixture
def notify_socket():
    folder = tempfile.mkdtemp(prefix="xn", dir="/tmp")  # unix socket paths must stay short
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.0)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def _datagrams(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_run_daemon_notifies_systemd_ready_watchdog_and_stops_on_sigterm(crop_bundle, notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: a ping at most every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    def sigterm_at_fourth(kind, fields):
        if kind == "mask" and len(sink.of("mask")) == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    sink = CollectingSink(on_send=sigterm_at_fourth)
    before = signal.getsignal(signal.SIGTERM)
    stats = run_daemon(config(crop_bundle), sink, camera=camera(fps=20))
    assert signal.getsignal(signal.SIGTERM) is before
    assert stats.masks in (4, 5)  # the frame in flight when the signal came is finished
    messages = _datagrams(sock)
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    watchdog = [i for i, m in enumerate(messages) if m == "WATCHDOG=1"]
    assert watchdog and watchdog[0] > ready
    assert messages[-1] == "STOPPING=1"


def test_sd_notifier_rate_limits_the_watchdog_and_is_silent_without_a_socket(notify_socket):
    path, sock = notify_socket
    now = [0.0]
    notifier = SdNotifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert notifier.watchdog() and not notifier.watchdog()
    now[0] = 1.01
    assert notifier.watchdog()
    assert _datagrams(sock) == ["WATCHDOG=1", "WATCHDOG=1"]
    assert not SdNotifier.from_environ({}).ready()


def test_config_from_toml_example_and_errors(tmp_path):
    example = load_config(REPO / "deploy" / "daemon.toml", threads=1)
    assert example.camera.startswith("sim") and example.threads == 1 and example.queue_size >= 1
    assert example.bundle == Path("/var/lib/xenoedge/active.xeb")
    path = tmp_path / "d.toml"
    path.write_text('[bundle]\npath = "b.xeb"\n[pipeline]\nqueue_size = 4\n[engine]\nprefer = ["onnxruntime"]\n')
    loaded = load_config(path)
    assert loaded.bundle == tmp_path / "b.xeb" and loaded.queue_size == 4 and loaded.prefer == ("onnxruntime",)
    path.write_text("[pipeline]\nqueue_sise = 4\n")
    with pytest.raises(ConfigError, match="queue_size"):
        load_config(path)
    path.write_text('[pipeline]\nqueue_size = "4"\n')
    with pytest.raises(ConfigError, match="queue_size must be int"):
        load_config(path)
    with pytest.raises(UnknownNameError):
        DaemonConfig().replace(queu_size=3)


@pytest.mark.parametrize("with_frames", [False, True])
def test_png_sink_writes_mask_pictures_with_a_legend(crop_bundle, tmp_path, with_frames):
    import cv2
    from xenoedge.edge.sinks import RecentFrames
    from xenoedge.xeno.labels import CROP
    from xenoedge.xeno.previews import LEGEND_PX, PAD_PX, PANEL_TOP_PX

    cam = camera()
    frames = RecentFrames(cam) if with_frames else None
    sink = PngSink(tmp_path / "masks", every=2, frame_rgb=frames.rgb if frames else None)
    with Daemon(config(crop_bundle), sink, camera=cam) as daemon:
        daemon.run(max_frames=4)
    written = sorted((tmp_path / "masks").glob("mask_*.png"))
    assert sink.written == 2 and len(written) == 2
    h, w, _ = get_sensor(SENSOR).cube_shape
    panels = 2 if with_frames else 1  # frame | mask over frame, or the mask alone
    picture = cv2.imread(str(written[-1]))[..., ::-1]
    assert picture.shape == (PANEL_TOP_PX + h, panels * (w + PAD_PX) + LEGEND_PX, 3)
    legend = picture[:, -LEGEND_PX:].reshape(-1, 3)
    for color in CROP.colors():  # the bundle's label colours, from its HELLO
        assert (legend == color).all(axis=1).sum() >= 100
    if with_frames:  # the frame panel is a picture, not flat
        assert picture[PANEL_TOP_PX:, :w].std() > 10


def test_daemon_runs_on_the_device_install_without_torch_onnx_nncf_or_openvino(crop_bundle):
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {{'torch', 'onnx', 'nncf', 'openvino', 'onnxslim'}}:
            raise ImportError('device install must not import ' + name)
sys.meta_path.insert(0, Block())
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon import Daemon
from xenoedge.edge.sinks import CollectingSink
sink = CollectingSink()
with Daemon(DaemonConfig(bundle={str(crop_bundle)!r}, camera="sim:crop", capture_frames=2), sink) as d:
    stats = d.run(max_frames=2)
assert stats.masks == 2, stats
print(d.engine.name if d.engine else "", sink.of("hello")[0]["engine"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stdout  # OpenVINO absent: the ORT target runs


def test_a_failing_sink_does_not_stop_the_daemon(crop_bundle):
    class Flaky(CollectingSink):
        def send(self, kind, **fields):
            if kind == "mask" and fields["frame_index"] % 2:
                raise OSError("link down")
            super().send(kind, **fields)

    sink = Flaky()
    # on-demand camera: frames 0..5 all reach the sink (none dropped on a busy machine), 3 of them odd
    with Daemon(config(crop_bundle, queue_size=8), sink, camera=camera()) as daemon:
        stats = daemon.run(max_frames=6)
    assert stats.frames == 6 and stats.errors["sink"] == len(sink.of("error")) >= 2
    assert "link down" in sink.of("error")[0]["message"] and sink.of("mask")


def test_config_table_in_the_docs_matches_the_code():
    from xenoedge.edge.config import CONFIG_KEYS

    text = (REPO / "docs" / "daemon.md").read_text()
    documented = set(re.findall(r"^\| `\[(\w+)\] (\w+)` \|", text, flags=re.M))
    assert documented == {(table, key) for table, keys in CONFIG_KEYS.items() for key in keys}


def test_daemon_main_returns_exit_codes_with_a_one_line_reason(crop_bundle, tmp_path):
    lines = []
    assert daemon_main(None, bundle=crop_bundle, max_frames=2, capture_frames=2, log=lines.append) == 0
    assert "2 masks" in lines[-1]
    assert daemon_main(None, bundle=tmp_path / "missing.xeb", log=lines.append) == 1
    assert lines[-1] == f"xenoedge run: {tmp_path / 'missing.xeb'}: no such bundle file"


def test_reflectance_bundle_calibrates_in_numpy_and_matches_the_raw_bundle(crop_bundle, jetson_bundles):
    jetson, stand_in = jetson_bundles
    with pytest.raises(EngineError, match="jetson-orin-tensorrt-fp32 \\(tensorrt\\)"):
        Daemon(config(jetson), CollectingSink(), camera=camera()).start()  # no TensorRT here
    masks = []
    for bundle in (crop_bundle, stand_in):
        sink = CollectingSink()
        with Daemon(config(bundle, queue_size=16), sink, camera=camera()) as daemon:
            daemon.run(max_frames=3)
            assert daemon.engine.variant == ("raw" if bundle == crop_bundle else "reflectance")
        masks.append({m["frame_index"]: m["classes"] for m in sink.of("mask")})
    common = sorted(set(masks[0]) & set(masks[1]))
    assert common
    for index in common:  # calibration in the graph vs in NumPy: the same classes
        assert np.mean(masks[0][index] == masks[1][index]) > 0.995


def test_replay_camera_runs_to_its_end_and_the_daemon_returns(crop_bundle, tmp_path):
    from xenoedge.calibration.mosaic import cube_from_mosaic
    from xenoedge.devices.formats import write_cube
    from xenoedge.devices.replay import ReplayCamera

    sensor = get_sensor(SENSOR)
    store = tmp_path / "references.npz"
    folder = tmp_path / "replay"
    folder.mkdir()
    with camera() as sim:  # raw cubes of the simulated camera, as files
        for i in range(3):
            write_cube(folder / f"scan{i}.npz", cube_from_mosaic(sim.read().data, sensor), sensor.wavelengths())

    def replay():
        return ReplayCamera(sensor, folder, camera_id="replay-scans", exposure_ms=10.0)

    replay_config = config(crop_bundle, references=store, capture_references="never", queue_size=8)
    with pytest.raises(DaemonError, match="no calibration references"):
        Daemon(replay_config, CollectingSink(), camera=replay()).start()
    refs = load_references(_captured_references(crop_bundle, tmp_path / "sim.npz"))
    refs.camera_id = "replay-scans"
    save_references(store, refs)
    sink = CollectingSink()
    with Daemon(replay_config, sink, camera=replay()) as daemon:
        stats = daemon.run()  # no max_frames: returns when the replay ends
    assert stats.masks == 3 and [m["frame_index"] for m in sink.of("mask")] == [0, 1, 2]
    assert "camera finished" in sink.of("error")[-1]["message"] and stats.error_total == 0


def _captured_references(bundle, path):
    with Daemon(config(bundle, references=path), CollectingSink(), camera=camera()) as daemon:
        daemon.start()
    return path


def test_bound_references_are_memory_mapped_and_removed_at_close(crop_bundle, monkeypatch):
    """Once bound, frame-size references leave memory for a private file (read-only memory maps,
    the same values), as does the dark while the white is captured; a reload replaces the files;
    closing removes the folder."""
    import xenoedge.edge.daemon.models as models_module
    from xenoedge.calibration.references import References

    monkeypatch.setattr(models_module, "SPILL_BYTES", 1)  # the crop references are small: spill them all
    with Daemon(config(crop_bundle), CollectingSink(), camera=camera()) as daemon:
        daemon.run(max_frames=1)
        refs = daemon.references
        assert isinstance(refs.dark, np.memmap) and isinstance(refs.white, np.memmap)
        assert not refs.dark.flags.writeable
        folder = Path(refs.dark.filename).parent
        first = sorted(p.name for p in folder.iterdir())
        assert first == ["dark-capture.npy", "white-1.npy"]  # the dark held on disk during the white capture, kept
        rng = np.random.default_rng(0)
        dark = rng.uniform(90, 110, refs.dark.shape).astype(np.float32)
        white = rng.uniform(900, 1100, refs.white.shape).astype(np.float32)
        daemon.models.install_references(References(refs.camera_id, refs.sensor, refs.sensor_signature, dark, white))
        again = daemon.references
        np.testing.assert_array_equal(again.dark, dark)
        np.testing.assert_array_equal(again.white, white)
        assert sorted(p.name for p in folder.iterdir()) != first and len(list(folder.iterdir())) == 2
        stats = daemon.run(max_frames=2)  # still serving on the new references
        assert stats.masks >= 2
    assert not folder.exists()
