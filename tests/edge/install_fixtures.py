"""Real bundles for the flashing tests, made from the packaged crop bundle (runs on ONNX Runtime).

``variant(path, version=..., files=..., signing_key=...)`` rewrites the shipped crop bundle
with a new version, changed member bytes (e.g. a self-test that cannot pass) or a signature;
``unpacked_files`` gives its members. Nothing here fakes a check: every bundle is written by
``xenoedge.export.bundle.write_bundle`` and every install below runs the real engine.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from xenoedge.edge.flashing import InstallPolicy
from xenoedge.export.bundle import read_manifest, write_bundle
from xenoedge.export.bundle.archive import extract_bundle
from xenoedge.export.bundle.manifest import compatible_targets, listed_files

from xenoedge.sensors import get_sensor

CROP_BUNDLE = Path(__file__).resolve().parents[2] / "edge" / "default_bundles" / "crop.xeb"
CROP_SENSOR = get_sensor("mosaic-5x5-nir").signature
TIVITA_SENSOR = get_sensor("tivita").signature
ORT_ONLY = ("onnxruntime",)


def policy(**changes) -> InstallPolicy:
    """The policy of a device with the crop camera and ONNX Runtime (fast self-test) that opted in to
    unsigned bundles (``allow_unsigned``; ignored once ``trusted_public_key`` is given). Devices with
    neither: tests/edge/test_secure_default.py."""
    base = dict(sensor_signature=CROP_SENSOR, runtimes=ORT_ONLY, allow_unsigned=True)
    return InstallPolicy(**(base | changes))


def ort_target(manifest_or_bundle: dict | Path = CROP_BUNDLE) -> str:
    """The name of the target an ONNX Runtime-only device (``policy()``) runs, read from the manifest
    (a bundle file, an unpacked bundle folder or the manifest itself)."""
    manifest = manifest_or_bundle if isinstance(manifest_or_bundle, dict) else read_manifest(manifest_or_bundle)
    return compatible_targets(manifest, sensor_signature=manifest["sensor"]["signature"], runtimes=ORT_ONLY)[0]


def ort_models(manifest_or_bundle: dict | Path = CROP_BUNDLE) -> list[str]:
    """Member paths of the ONNX Runtime target's graphs: its ``model``, then its
    ``model_classes_only`` (what the engine loads when no confidence is asked for) if it has one."""
    manifest = manifest_or_bundle if isinstance(manifest_or_bundle, dict) else read_manifest(manifest_or_bundle)
    spec = manifest["targets"][ort_target(manifest)]
    return [spec["model"], *([spec["model_classes_only"]] if spec.get("model_classes_only") else [])]


def unpacked_files(bundle: Path, workdir: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest as a plain dict without its signature, member path -> bytes) of ``bundle``."""
    tag = hashlib.sha1(f"{bundle}{os.getpid()}".encode()).hexdigest()[:10]
    folder = workdir / f"unpacked-{tag}"
    if not folder.exists():
        extract_bundle(bundle, folder)
    manifest = dict(read_manifest(folder))
    manifest.pop("signature", None)
    files = {name: folder.joinpath(*name.split("/")).read_bytes() for name in listed_files(manifest)}
    return manifest, files


def variant(
    out: Path,
    *,
    version: str = "1.1.0",
    files: dict[str, bytes] | None = None,
    drop: tuple[str, ...] = (),
    signing_key=None,
    source: Path = CROP_BUNDLE,
    **manifest_changes,
) -> Path:
    """The crop bundle rewritten to ``out`` with ``version``, replaced/added member ``files``,
    members ``drop``-ped, other top-level manifest fields changed, optionally signed."""
    manifest, members = unpacked_files(source, out.parent)
    members = {k: v for k, v in members.items() if k not in drop} | (files or {})
    manifest.update(manifest_changes, version=version)
    for name, target in manifest["targets"].items():
        target["files"] = sorted(p for p in members if p.startswith(f"models/{name}/"))
    manifest["selftest"]["files"] = sorted(p for p in members if p.startswith("selftest/"))
    return write_bundle(out, manifest, members, signing_key=signing_key)


def failing_selftest_files(bundle: Path, workdir: Path) -> dict[str, bytes]:
    """A ``selftest/expected.npz`` every pixel of which the model gets wrong."""
    manifest, files = unpacked_files(bundle, workdir)
    n_classes = len(manifest["labels"])
    with np.load(io.BytesIO(files["selftest/expected.npz"])) as data:
        expected = data["classes"]
    buf = io.BytesIO()
    np.savez_compressed(buf, classes=((expected.astype(np.int64) + 1) % n_classes).astype(np.uint8))
    return {"selftest/expected.npz": buf.getvalue()}


# --------------------------------------------------------------------------- crash tests

#: Exit status of a device process killed at its chosen step.
KILLED_EXIT = 77


def install_and_die_at(state_dir: str, bundle: str, kill_at: int) -> None:
    """Child process body: install ``bundle`` (no self-test) and ``os._exit(KILLED_EXIT)`` right
    after durable step number ``kill_at``, like a power cut; exit 0 when the install finished."""
    from xenoedge.edge.flashing import SlotStore, install_bundle

    count = 0

    def on_step(name: str) -> None:
        nonlocal count
        if count == kill_at:
            os._exit(KILLED_EXIT)
        count += 1

    try:
        install_bundle(SlotStore(state_dir), bundle, policy(self_test=False), on_step=on_step)
    except BaseException:
        os._exit(3)
    os._exit(0)


#: Exit status of a simulated daemon crash (like SIGABRT's 128 + 6).
CRASH_EXIT = 134


def device_start(state_dir: str, crashing_versions: tuple[str, ...]) -> None:
    """Child process body: one start of a device daemon as far as the slot store sees it.
    ``recover()`` (``RestartLoopError`` -> exit 78), then the active bundle's files are checked
    and, for a version in ``crashing_versions``, the process dies before its first frames (exit
    134); otherwise it serves and calls ``mark_good`` (exit 0)."""
    from xenoedge.edge.flashing import EXIT_RESTART_LOOP, RestartLoopError, SlotStore

    store = SlotStore(state_dir)
    try:
        store.recover()
    except RestartLoopError:
        os._exit(EXIT_RESTART_LOOP)
    active = store.active()
    if active is None or store.check_slot(active.slot) is not None:
        os._exit(2)
    if active.version in crashing_versions:
        os._exit(CRASH_EXIT)
    store.mark_good(active.slot)
    os._exit(0)
