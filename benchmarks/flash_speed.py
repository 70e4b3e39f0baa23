"""Flash time and effective throughput of the packaged bundles over a pseudo-terminal paced like a UART.

For each bundle (crop, surgical) and baud rate, a real daemon runs with a state folder, its first
model installed, serving masks from its simulated camera at ``--fps`` on the device end of a pty;
the host flashes a re-versioned copy of the same bundle with ``FlashClient``. Both ends write
through ``PacedLink`` at baud / 10 bytes/s (8N1), because a pty itself moves bytes at memory speed.
Prints one line per run and a Markdown table (docs/upload.md); ``--json`` writes the raw numbers.

    python benchmarks/flash_speed.py                      # crop + surgical at 115200 and 921600
    python benchmarks/flash_speed.py --bundles crop --bauds 921600 --chunk 4096 --window 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.edge.builtin_bundles import DEFAULT_BUNDLES, default_bundle
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon import Daemon
from xenoedge.edge.flashing.host import FlashClient
from xenoedge.edge.links import PtyLink, SerialLink
from xenoedge.edge.links.paced import PacedLink
from xenoedge.edge.protocol.sink import ProtocolSink
from xenoedge.export.bundle import extract_bundle, write_bundle

from xenoedge.sensors import get_sensor


def reversioned(source: Path, dest: Path, version: str) -> Path:
    """``source`` re-packed with another version (a different file, the same model)."""
    folder = extract_bundle(source, dest.parent / f"{dest.stem}-unpacked")
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {}
    for spec in manifest["targets"].values():
        files.update({f["path"]: folder / f["path"] for f in spec.pop("files")})
    files.update({f["path"]: folder / f["path"] for f in manifest["selftest"].pop("files")})
    manifest["version"] = version
    return write_bundle(dest, manifest, files)


def run_one(name: str, baud: int, work: Path, *, fps: float, chunk: int, window: int) -> dict:
    source = default_bundle(name)
    camera_spec, sensor = DEFAULT_BUNDLES[name]
    new = reversioned(source, work / f"{name}-{baud}" / f"{name}-next.xeb", "1.0.1")
    config = DaemonConfig(
        bundle=source,
        camera=camera_spec,
        state_dir=work / f"{name}-{baud}" / "state",
        max_fps=fps,
        threads=1,
        capture_frames=2,
    )
    device_end = PtyLink(announce=lambda line: None, write_timeout_s=5.0)
    device_end.open()
    camera = SimulatedCamera(get_sensor(sensor), domain=camera_spec.split(":")[1], seed=0)
    daemon = Daemon(config, ProtocolSink(PacedLink(device_end, baud), device_id="bench"), camera=camera)
    daemon.start()
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    host = PacedLink(SerialLink(device_end.slave_path, baud, reconnect=False), baud)
    host.open()
    try:
        client = FlashClient(host, chunk_size=chunk, window=window, ack_timeout_s=5.0)
        report = client.flash(new)
    finally:
        host.close()
        daemon.stop()
        loop.join(timeout=30)
        daemon.close()
        device_end.close()
    raw = baud / 10
    row = {
        "bundle": name,
        "bytes": report.total_bytes,
        "baud": baud,
        "raw_Bps": raw,
        "upload_s": report.upload_seconds,
        "total_s": report.total_seconds,
        "install_s": report.total_seconds - report.upload_seconds,
        "throughput_Bps": report.throughput_Bps,
        "share_of_raw": report.throughput_Bps / raw,
        "wire_bytes": report.wire_bytes,
        "ideal_s": report.total_bytes / raw,
        "resends": report.resends,
        "selftest": report.selftest.get("passed"),
    }
    print(
        f"{name} {report.total_bytes} B at {baud} baud: upload {row['upload_s']:.2f} s "
        f"({row['throughput_Bps'] / 1000:.1f} kB/s = {row['share_of_raw']:.1%} of {raw / 1000:.1f} kB/s raw), "
        f"install {row['install_s']:.2f} s, total {row['total_s']:.2f} s; wire {report.wire_bytes} B, "
        f"{report.resends} resends",
        flush=True,
    )
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| bundle | size | baud | raw byte rate | upload | throughput | of raw | install + swap | flash total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bundle']} | {r['bytes'] / 1000:.1f} kB | {r['baud']} | {r['raw_Bps'] / 1000:.2f} kB/s "
            f"| {r['upload_s']:.2f} s | {r['throughput_Bps'] / 1000:.2f} kB/s | {r['share_of_raw']:.1%} "
            f"| {r['install_s']:.2f} s | {r['total_s']:.2f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", default="crop,surgical", help="packaged bundles, comma-separated")
    parser.add_argument("--bauds", default="115200,921600", help="baud rates, comma-separated")
    parser.add_argument("--fps", type=float, default=1.0, help="masks per second the device keeps sending")
    parser.add_argument("--chunk", type=int, default=4096, help="upload chunk size, bytes")
    parser.add_argument("--window", type=int, default=8, help="chunks in flight")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="xenoedge-flash-bench-") as tmp:
        for name in args.bundles.split(","):
            for baud in (int(b) for b in args.bauds.split(",")):
                rows.append(run_one(name, baud, Path(tmp), fps=args.fps, chunk=args.chunk, window=args.window))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
