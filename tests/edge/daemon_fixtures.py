"""A real bundle for the daemon and engine tests: the shipped crop model exported for the mosaic camera.

Built once per test session (about 7 s) under pytest's session temp folder and shared by the
modules that ask for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xenoedge.devices.camera import Camera

SENSOR = "mosaic-5x5-nir"


def build_crop_bundle(base: Path) -> Path:
    """``base/crop.xeb``: FP32 ORT + OpenVINO targets, raw input, full 217x409x25 cube."""
    bundle = base / "crop.xeb"
    if bundle.is_file():
        return bundle
    from xenoedge.export.export import export_checkpoint
    from xenoedge.xeno.default_models import default_model_dir
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

    base.mkdir(parents=True, exist_ok=True)
    write_dataset(
        base / "val",
        DatasetSpec(
            domain="crop",
            species=("maize",),
            subjects_per_species=1,
            images_per_subject=2,
            sensor=SENSOR,
            height=48,
            width=64,
            seed=1,
        ),
    )
    export_checkpoint(
        default_model_dir("crop"),
        target="cpu",
        precision="fp32",
        out=bundle,
        calib=None,
        val=base / "val",
        shape=None,
        max_drop=None,
        log=lambda m: None,
    )
    return bundle


@pytest.fixture(scope="session", name="crop_bundle")
def crop_bundle_fixture(tmp_path_factory) -> Path:
    return build_crop_bundle(tmp_path_factory.getbasetemp() / "edge-crop-bundle")


class FaultyCamera(Camera):
    """Wraps a camera; ``faults`` maps a read number (0-based, counting every read() call) to
    ``"error"`` (raise CameraError), ``"nan"`` (float data with NaNs) or ``"shape"`` (a cropped frame)."""

    def __init__(self, inner: Camera, faults: dict[int, str]):
        super().__init__(inner.camera_id, inner.sensor, inner.exposure_ms)
        self.inner, self.faults, self.reads, self.opens = inner, dict(faults), 0, 0

    def _open(self) -> None:
        self.opens += 1
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def read_reference(self, kind):
        return self.inner.read_reference(kind)

    @property
    def on_demand(self) -> bool:
        return self.inner.on_demand

    def read(self):
        from xenoedge.errors import CameraError

        n, self.reads = self.reads, self.reads + 1
        fault = self.faults.get(n)
        if fault == "error":
            raise CameraError(f"camera {self.camera_id}: USB transfer failed (injected, read {n})")
        frame = self.inner.read()
        if fault == "nan":
            data = frame.data.astype("float32")
            data[5, 7] = float("nan")
            frame.data = data
        elif fault == "shape":
            frame.data = frame.data[:-5]
        return frame


def build_jetson_bundles(base: Path) -> tuple[Path, Path]:
    """The Jetson (TensorRT, reflectance-input) bundle of the crop model, and a copy whose target
    says ``onnxruntime``, so the reflectance path runs on a machine without TensorRT."""
    import json

    from xenoedge.export.bundle import extract_bundle, write_bundle

    jetson, stand_in = base / "jetson.xeb", base / "reflectance-ort.xeb"
    if stand_in.is_file():
        return jetson, stand_in
    from xenoedge.export.export import export_checkpoint
    from xenoedge.xeno.default_models import default_model_dir

    build_crop_bundle(base)
    export_checkpoint(
        default_model_dir("crop"),
        target="jetson-orin",
        precision="fp32",
        out=jetson,
        calib=None,
        val=base / "val",
        shape=None,
        max_drop=None,
        log=lambda m: None,
    )
    folder = extract_bundle(jetson, base / "jetson")
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {}
    for spec in manifest["targets"].values():
        spec["runtime"] = "onnxruntime"
        files.update({f["path"]: folder / f["path"] for f in spec.pop("files")})
    files.update({f["path"]: folder / f["path"] for f in manifest["selftest"].pop("files")})
    write_bundle(stand_in, manifest, files)
    return jetson, stand_in


@pytest.fixture(scope="session", name="jetson_bundles")
def jetson_bundles_fixture(tmp_path_factory) -> tuple[Path, Path]:
    return build_jetson_bundles(tmp_path_factory.getbasetemp() / "edge-crop-bundle")
