"""Flashing tests: bundles made from the packaged crop bundle, and a device daemon on a real pty pair.

``bundle_variant`` re-packs ``edge/default_bundles/crop.xeb`` (a real, runnable model) with
another version, a signature, a broken self-test or another sensor. ``DeviceUnderTest`` runs
the real ``Daemon`` in a thread with a state folder, writing the wire protocol to the master
of a pseudo-terminal pair; the host opens the slave with pyserial (``SerialLink``), the same
bytes a USB serial cable carries.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from install_fixtures import failing_selftest_files, ort_models, ort_target, variant
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon import Daemon
from xenoedge.edge.links import PtyLink, SerialLink
from xenoedge.edge.protocol.decoder import StreamDecoder
from xenoedge.edge.protocol.packets import PacketType
from xenoedge.edge.protocol.sink import ProtocolSink
from xenoedge.export.bundle import extract_bundle, save_public_key, write_bundle

from xenoedge.sensors import get_sensor

DEFAULT_BUNDLES_DIR = Path(__file__).resolve().parents[2] / "edge" / "default_bundles"
CROP = DEFAULT_BUNDLES_DIR / "crop.xeb"
SURGICAL = DEFAULT_BUNDLES_DIR / "surgical.xeb"
SENSOR = "mosaic-5x5-nir"


def bundle_variant(
    dest: Path,
    *,
    version: str = "1.1.0",
    signing_key=None,
    break_selftest: bool = False,
    source: Path = CROP,
) -> Path:
    """``source`` re-packed as ``dest`` with ``version``; ``break_selftest`` inverts the expected mask."""
    files = failing_selftest_files(source, dest.parent) if break_selftest else None
    return variant(dest, version=version, files=files, signing_key=signing_key, source=source)


def write_key(tmp: Path, public_key) -> Path:
    path = tmp / "release.pub"
    save_public_key(path, public_key)
    return path


class DeviceUnderTest:
    """The real daemon in a thread, serving masks on a pty; ``host_link()`` opens the host end."""

    def __init__(self, state_dir: Path, *, bundle: Path | None = CROP, max_fps: float = 4.0, **config):
        config.setdefault("capture_frames", 2)
        config.setdefault("status_interval_s", 0.5)
        if config.get("public_key") is None:  # unsigned test bundles: the device's explicit opt-in
            config.setdefault("allow_unsigned", True)
        self.config = DaemonConfig(
            bundle=bundle, camera="sim:crop", state_dir=state_dir, max_fps=max_fps, threads=1, **config
        )
        self.link = PtyLink(announce=lambda line: None, write_timeout_s=0.5)
        self.link.open()
        self.sink = ProtocolSink(self.link, device_id="dut")
        camera = SimulatedCamera(get_sensor(SENSOR), domain="crop", species=("wheat",), seed=3)
        self.daemon = Daemon(self.config, self.sink, camera=camera)
        self.daemon.start()
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()

    def host_link(self, **kw) -> SerialLink:
        link = SerialLink(self.link.slave_path, 921600, reconnect=False, **kw)
        link.open()
        return link

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(timeout=20)
        self.daemon.close()
        self.link.close()

    def __enter__(self) -> DeviceUnderTest:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def masks_from(link, seconds: float = 3.0, n: int = 2) -> list:
    """MASK packets read from ``link`` within ``seconds`` (stops after ``n``)."""
    import time

    decoder, masks = StreamDecoder(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(masks) < n:
        for packet in decoder.feed(link.read(65536, timeout_s=0.05)):
            if packet.type == PacketType.MASK:
                masks.append(packet.mask())
    return masks


def failing_on_frames_variant(dest: Path, *, version: str = "1.3.0") -> Path:
    """The crop model with a bug that its self-test cannot see: an extra Reshape whose target size
    comes from the sum of the frame's first row. It fits for the (tiled) golden input, so both
    self-tests pass, and fails in ONNX Runtime on camera frames. ONNX Runtime target only (read
    from the manifest); the bug is in each of its graphs (the full one and the classes-only one
    the engine loads when no confidence is asked for)."""
    folder = extract_bundle(CROP, dest.parent / f"{dest.stem}-unpacked")
    manifest = json.loads((folder / "manifest.json").read_text())
    target = ort_target(manifest)
    manifest["targets"] = {target: manifest["targets"][target]}
    manifest["accuracy"] = {k: v for k, v in manifest.get("accuracy", {}).items() if k == target}
    files: dict[str, object] = {f["path"]: folder / f["path"] for f in manifest["targets"][target].pop("files")}
    files.update({f["path"]: folder / f["path"] for f in manifest["selftest"].pop("files")})
    from xenoedge.export.bundle import tile_to

    with np.load(folder / manifest["selftest"]["input"]) as z:  # the self-test tiles its input to the frame
        tiled = tile_to(z["raw"], tuple(manifest["input"]["shape"]))
    golden_row_sum = float(tiled[:, 0].astype(np.float64).sum())
    assert golden_row_sum < 2**24  # exact in float32 too
    for model_path in ort_models(manifest):
        files[model_path] = _with_row_sum_bug(folder / model_path, golden_row_sum)
    manifest["version"] = version
    return write_bundle(dest, manifest, files)


def _with_row_sum_bug(path: Path, golden_row_sum: float) -> bytes:
    """The ONNX model at ``path`` whose ``classes`` output goes through a Reshape that fails unless
    the sum of row 0 of ``raw`` is ``golden_row_sum`` (and changes nothing when it is)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["classes_inner" if o == "classes" else o for o in node.output]
    graph.initializer.extend(
        [
            helper.make_tensor("golden_row_sum", TensorProto.FLOAT, [], [golden_row_sum]),
            helper.make_tensor("row_start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("row_end", TensorProto.INT64, [1], [1]),
            helper.make_tensor("row_axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("one_i64", TensorProto.INT64, [], [1]),
            helper.make_tensor("axes0", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ones1", TensorProto.FLOAT, [1], [1.0]),
            helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Slice", ["raw", "row_start", "row_end", "row_axis"], ["bug_row"]),
            helper.make_node("Cast", ["bug_row"], ["bug_rowf"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["bug_rowf"], ["bug_sum_row"], keepdims=0),
            helper.make_node("Sub", ["bug_sum_row", "golden_row_sum"], ["bug_d"]),
            helper.make_node("Cast", ["bug_d"], ["bug_k"], to=TensorProto.INT64),
            helper.make_node("Add", ["bug_k", "one_i64"], ["bug_n"]),
            helper.make_node("Unsqueeze", ["bug_n", "axes0"], ["bug_shape"]),
            helper.make_node("Reshape", ["ones1", "bug_shape"], ["bug_r"]),  # fails unless max == golden
            helper.make_node("ReduceSum", ["bug_r"], ["bug_sum"], keepdims=0),
            helper.make_node("Mul", ["bug_sum", "zero_f"], ["bug_zero"]),
            helper.make_node("Cast", ["bug_zero"], ["bug_zero_i"], to=TensorProto.INT32),
            helper.make_node("Cast", ["classes_inner"], ["bug_classes_i"], to=TensorProto.INT32),
            helper.make_node("Add", ["bug_classes_i", "bug_zero_i"], ["bug_sum_i"]),
            helper.make_node("Cast", ["bug_sum_i"], ["classes"], to=TensorProto.UINT8),
        ]
    )
    return model.SerializeToString()
