"""Compiled-model caches, effective settings and operator profiles of the engines, on a real bundle.

OpenVINO's ``CACHE_DIR`` is exercised on the CPU; the TensorRT engine cache needs ONNX Runtime's
TensorRT provider (a GPU build): those tests skip with that reason elsewhere.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from daemon_fixtures import crop_bundle_fixture  # noqa: F401  (the crop_bundle fixture)
from xenoedge.edge.engines import CACHE_KEEP, EngineOptions, model_cache_folder, open_engine
from xenoedge.export.bundle import extract_bundle, load_selftest, read_manifest, tile_to
from xenoedge.export.bundle.runtime import tensorrt_provider_options


@pytest.fixture(scope="module")
def bundle(crop_bundle, tmp_path_factory):
    folder = extract_bundle(crop_bundle, tmp_path_factory.mktemp("cache") / "bundle")
    return folder, read_manifest(folder)


def _run(engine, folder, manifest) -> np.ndarray:
    selftest = load_selftest(folder, manifest)
    engine.bind_references(selftest.inputs["dark"], selftest.inputs["gain"])
    return engine.infer(tile_to(selftest.inputs["raw"], engine.input_shape)).classes.copy()


def test_openvino_compiles_once_then_imports_from_the_cache(bundle, tmp_path):
    folder, manifest = bundle
    options = EngineOptions(threads=1, cache_dir=tmp_path / "cache")
    first = open_engine(folder, manifest, prefer=["openvino"], options=options)
    assert first.cache_state == "built" and first.cache_folder.parent == tmp_path / "cache"
    blobs = sorted(p.name for p in first.cache_folder.iterdir())
    assert blobs, "OpenVINO wrote no compiled blob into the cache folder"
    classes_first = _run(first, folder, manifest)
    first.close()

    second = open_engine(folder, manifest, prefer=["openvino"], options=options)
    assert second.cache_state == "loaded"  # OpenVINO's LOADED_FROM_CACHE
    assert second.cache_folder == first.cache_folder
    assert sorted(p.name for p in second.cache_folder.iterdir()) == blobs  # nothing compiled anew
    assert np.array_equal(_run(second, folder, manifest), classes_first)
    settings = second.settings()
    assert settings["cache"] == "loaded" and settings["cache_folder"] == str(second.cache_folder)
    assert settings["runtime_version"] and settings["effective_precision"] in ("f32", "bf16", "f16")
    assert settings["load_ms"] > 0


def test_without_a_cache_folder_every_start_compiles(bundle):
    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=["openvino"], options=EngineOptions(threads=1))
    assert engine.cache_state == "off" and engine.cache_folder is None


def test_a_new_model_gets_its_own_folder_and_old_folders_are_pruned(bundle, tmp_path):
    folder, manifest = bundle
    model = folder / manifest["targets"][next(iter(manifest["targets"]))]["model"]
    cache = tmp_path / "cache"
    first = model_cache_folder(cache, model, "CPU")
    assert model_cache_folder(cache, model, "CPU") == first  # same file: same folder
    changed = tmp_path / model.name
    changed.write_bytes(model.read_bytes() + b"\0")
    assert model_cache_folder(cache, changed, "CPU") != first  # a new bundle never reads an old engine
    for i in range(CACHE_KEEP + 2):
        other = tmp_path / f"m{i}.onnx"
        other.write_bytes(str(i).encode())
        model_cache_folder(cache, other, "CPU")
        os.utime(cache / next(p.name for p in cache.iterdir() if p.name.startswith(f"m{i}-")), (1e9 + i, 1e9 + i))
    assert len(list(cache.iterdir())) == CACHE_KEEP


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_profile_names_the_operators_of_the_graph(bundle, runtime):
    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=[runtime], options=EngineOptions(threads=1, profile=True))
    _run(engine, folder, manifest)
    profile = engine.operator_profile()
    kinds = {op.op_type for op in profile}
    assert {"Conv", "Convolution"} & kinds, kinds
    assert sum(op.ms for op in profile) > 0 and all(op.calls >= 1 for op in profile)
    engine.close()


def test_onnxruntime_settings_name_providers_and_threads(bundle):
    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=["onnxruntime"], options=EngineOptions(threads=2))
    settings = engine.settings()
    assert settings["providers"][-1] == "CPUExecutionProvider" and settings["threads"] == 2
    assert settings["runtime"] == "onnxruntime" and settings["runtime_version"]


def test_tensorrt_options_set_no_precision_flags_and_cache_where_asked(tmp_path):
    # explicitly typed graphs (FP16-typed, Q/DQ INT8): built as typed, no builder precision flags
    for precision in ("fp32", "fp16", "int8"):
        options = tensorrt_provider_options(precision)
        assert options == {} and not any(k in options for k in ("trt_fp16_enable", "trt_int8_enable"))
    cached = tensorrt_provider_options("int8", str(tmp_path))
    assert cached["trt_engine_cache_path"] == cached["trt_timing_cache_path"] == str(tmp_path)
    assert cached["trt_engine_cache_enable"] == cached["trt_timing_cache_enable"] == "True"


def _tensorrt_available() -> bool:
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _tensorrt_available(), reason="ONNX Runtime's TensorRT provider is not installed (no GPU)")
def test_tensorrt_engine_is_built_once_then_loaded(bundle, tmp_path):
    folder, manifest = bundle
    if not any(t.get("runtime") == "tensorrt" for t in manifest["targets"].values()):
        pytest.skip("the test bundle has no TensorRT target")
    options = EngineOptions(cache_dir=tmp_path / "cache")
    first = open_engine(folder, manifest, prefer=["tensorrt"], options=options)
    assert first.cache_state == "built"
    _run(first, folder, manifest)
    assert any(first.cache_folder.glob("*.engine"))
    second = open_engine(folder, manifest, prefer=["tensorrt"], options=options)
    assert second.cache_state == "loaded"
    options_used = second.settings()["provider_options"]["TensorrtExecutionProvider"]
    assert options_used["trt_engine_cache_enable"] in ("1", "True")


def test_a_daemon_started_twice_on_an_openvino_bundle_compiles_once(crop_bundle, tmp_path):
    from daemon_fixtures import SENSOR
    from xenoedge.devices.simulated import SimulatedCamera
    from xenoedge.edge.config import DaemonConfig
    from xenoedge.edge.daemon import Daemon
    from xenoedge.edge.sinks import CollectingSink

    from xenoedge.sensors import get_sensor

    config = DaemonConfig(
        bundle=crop_bundle, camera="sim:crop", capture_frames=2, prefer=("openvino",), cache_dir=tmp_path / "cache"
    )
    states = []
    for _ in range(2):
        camera = SimulatedCamera(get_sensor(SENSOR), domain="crop", species=("tomato", "wheat"), seed=2)
        with Daemon(config, CollectingSink(), camera=camera) as daemon:
            daemon.run(max_frames=2)
            states.append((daemon.engine.runtime, daemon.engine.cache_state, daemon.engine.cache_folder))
    assert [s[:2] for s in states] == [("openvino", "built"), ("openvino", "loaded")]
    assert states[0][2] == states[1][2] and states[0][2].parent == tmp_path / "cache"


def test_the_daemon_cache_defaults_to_the_state_folder_then_the_user_cache(tmp_path, monkeypatch):
    from xenoedge.edge.config import DaemonConfig

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DaemonConfig().model_cache_dir() == tmp_path / "xdg" / "xenoedge" / "models"
    assert DaemonConfig(state_dir=tmp_path / "state").model_cache_dir() == tmp_path / "state" / "cache"
    assert DaemonConfig(cache_dir=tmp_path / "c", state_dir=tmp_path / "s").model_cache_dir() == tmp_path / "c"


def test_an_unwritable_cache_folder_only_costs_the_cache(bundle, tmp_path):
    folder, manifest = bundle
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    engine = open_engine(folder, manifest, prefer=["openvino"], options=EngineOptions(threads=1, cache_dir=blocker))
    assert engine.cache_state == "off" and engine.cache_folder is None
    assert _run(engine, folder, manifest).shape == engine.cube_shape[:2]
