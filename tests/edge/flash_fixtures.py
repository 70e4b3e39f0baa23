"""Flashing tests: bundles made from the packaged crop bundle, and a device daemon on a real pty pair.

``bundle_variant`` re-packs ``edge/default_bundles/crop.xeb`` (a real, runnable model) with
another version, a signature, a broken self-test or another sensor. ``DeviceUnderTest`` runs
the real ``Daemon`` in a thread with a state folder, writing the wire protocol to the master
of a pseudo-terminal pair; the host opens the slave with pyserial (``SerialLink``), the same
bytes a USB serial cable carries.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np

from calibration.sensors import get_sensor
from devices.simulated import SimulatedCamera
from edge.config import DaemonConfig
from edge.daemon import Daemon
from edge.links import PtyLink, SerialLink
from edge.protocol.decoder import StreamDecoder
from edge.protocol.packets import PacketType
from edge.protocol.sink import ProtocolSink
from export.bundle import extract_bundle, save_public_key, write_bundle

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
    folder = extract_bundle(source, dest.parent / f"{dest.stem}-unpacked")
    manifest = json.loads((folder / "manifest.json").read_text())
    files: dict[str, object] = {}
    for spec in manifest["targets"].values():
        files.update({f["path"]: folder / f["path"] for f in spec.pop("files")})
    files.update({f["path"]: folder / f["path"] for f in manifest["selftest"].pop("files")})
    manifest["version"] = version
    if break_selftest:
        name = manifest["selftest"].get("expected", "selftest/expected.npz")
        with np.load(folder / name) as z:
            arrays = {k: z[k] for k in z.files}
        n_classes = len(manifest["labels"])
        for key, value in arrays.items():
            if value.dtype.kind in "ui":
                arrays[key] = ((value.astype(int) + 1) % n_classes).astype(value.dtype)  # every pixel another class
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files[name] = buf.getvalue()
    return write_bundle(dest, manifest, files, signing_key=signing_key)


def write_key(tmp: Path, public_key) -> Path:
    path = tmp / "release.pub"
    save_public_key(path, public_key)
    return path


class DeviceUnderTest:
    """The real daemon in a thread, serving masks on a pty; ``host_link()`` opens the host end."""

    def __init__(self, state_dir: Path, *, bundle: Path | None = CROP, max_fps: float = 4.0, **config):
        config.setdefault("capture_frames", 2)
        config.setdefault("status_interval_s", 0.5)
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
