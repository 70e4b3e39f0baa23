"""Engines on a real exported bundle: ONNX Runtime and OpenVINO, bound path vs self-test, refusals."""

from __future__ import annotations

import copy
import tracemalloc

import numpy as np
import pytest
from daemon_fixtures import crop_bundle_fixture  # noqa: F401  (the crop_bundle fixture)
from xenoedge.edge.engines import EngineError, EngineOptions, engine_candidates, open_engine
from xenoedge.export.bundle import extract_bundle, load_selftest, read_manifest, tile_to

RUNTIMES = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def bundle(crop_bundle, tmp_path_factory):
    folder = extract_bundle(crop_bundle, tmp_path_factory.mktemp("engines") / "bundle")
    return folder, read_manifest(folder)


def _selftest_inputs(engine, selftest):
    shapes = {"raw": engine.input_shape, "dark": engine.cube_shape, "gain": engine.cube_shape}
    return {name: tile_to(array, shapes[name]) for name, array in selftest.inputs.items()}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_engine_output_equals_the_bundle_selftest(bundle, runtime):
    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=[runtime], threads=2)
    assert engine.runtime == runtime and runtime in engine.name
    assert engine.input_shape == (1, 217, 409, 25) and engine.input_buffer.dtype == np.uint16
    selftest = load_selftest(folder, manifest)
    inputs = _selftest_inputs(engine, selftest)
    engine.bind_references(selftest.inputs["dark"], selftest.inputs["gain"])  # (1, 1, C): broadcast
    engine.warm_up(2)
    result = engine.infer(inputs["raw"])
    assert result.classes.shape == (217, 409) and result.classes.dtype == np.uint8
    assert np.array_equal(result.classes, selftest.expected[0])
    assert result.confidence is None  # nobody asked for it: not computed
    assert np.array_equal(engine.run_once(inputs), selftest.expected[0])
    assert engine.effective_precision  # f32 here; bf16 for int8/fp16 targets on AMX CPUs


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_confidence_is_computed_only_when_a_consumer_asks(bundle, runtime):
    folder, manifest = bundle
    selftest = load_selftest(folder, manifest)
    results = {}
    for confidence in (False, True):
        engine = open_engine(
            folder, manifest, prefer=[runtime], options=EngineOptions(threads=2, confidence=confidence)
        )
        engine.bind_references(selftest.inputs["dark"], selftest.inputs["gain"])
        result = engine.infer(_selftest_inputs(engine, selftest)["raw"])
        results[confidence] = (result.classes.copy(), None if result.confidence is None else result.confidence.copy())
        if runtime == "openvino":  # the confidence branch is not even compiled
            assert ("confidence" in {p.get_any_name() for p in engine._compiled.outputs}) is confidence
    assert results[False][1] is None
    conf = results[True][1]
    assert conf is not None and 0 < conf.min() <= conf.max() <= 1
    assert np.array_equal(results[False][0], results[True][0])


def test_ort_and_openvino_agree_on_a_camera_frame_and_the_bound_path_matches_the_plain_run(bundle):
    folder, manifest = bundle
    rng = np.random.default_rng(3)
    raw = rng.integers(40, 900, size=(1, 217, 409, 25), dtype=np.uint16)
    dark = np.full((217, 409, 25), 32.0, np.float32)
    gain = np.full((217, 409, 25), 1 / 800.0, np.float32)
    outputs = []
    for runtime in RUNTIMES:
        engine = open_engine(folder, manifest, prefer=[runtime])
        engine.bind_references(dark, gain)
        bound = engine.infer(raw).classes.copy()
        assert np.array_equal(bound, engine.run_once({"raw": raw, "dark": dark, "gain": gain}))
        outputs.append(bound)
    assert np.mean(outputs[0] == outputs[1]) > 0.999


def test_infer_writes_into_preallocated_buffers_and_allocates_no_frame_sized_memory(bundle):
    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=["onnxruntime"])
    engine.bind_references(np.zeros((1, 1, 25), np.float32), np.full((1, 1, 25), 1e-3, np.float32))
    engine.input_buffer[...] = 500
    first = engine.infer()
    engine.warm_up(3)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            result = engine.infer()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert result.classes is first.classes  # the same views every frame
    assert peak < 64 * 1024, f"{peak} bytes allocated over 10 frames (a frame is {engine.input_buffer.nbytes})"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_camera_frame_is_read_in_place_and_not_held_after_the_call(bundle, runtime):
    """The daemon hands each frame to ``infer``: no copy into the input buffer, the same classes as
    the copy path, and no reference kept (the camera reuses a frame buffer nobody holds)."""
    import sys

    folder, manifest = bundle
    engine = open_engine(folder, manifest, prefer=[runtime], threads=2)
    engine.bind_references(np.full((1, 1, 25), 32.0, np.float32), np.full((1, 1, 25), 1 / 800.0, np.float32))
    rng = np.random.default_rng(5)
    frames = [rng.integers(40, 900, size=(217, 409, 25), dtype=np.uint16) for _ in range(2)]
    copied = []
    for frame in frames:  # a read-only array cannot be shared: copied into the buffer
        readonly = frame.copy()
        readonly.flags.writeable = False
        copied.append(engine.infer(readonly).classes.copy())
    assert np.array_equal(engine.input_buffer[0], frames[-1])
    engine.input_buffer[...] = 0
    for frame, expected in zip(frames, copied, strict=True):
        refs = sys.getrefcount(frame)
        assert np.array_equal(engine.infer(frame).classes, expected)
        assert sys.getrefcount(frame) == refs  # not held by the engine's binding
    assert not engine.input_buffer.any()  # read in place: nothing was copied into the buffer
    assert np.array_equal(
        engine.infer().classes,
        engine.run_once(
            {
                "raw": engine.input_buffer,
                "dark": np.full((217, 409, 25), 32.0, np.float32),
                "gain": np.full((217, 409, 25), 1 / 800.0, np.float32),
            }
        ),
    )  # buffer bound again


def test_default_order_prefers_openvino_then_onnxruntime_and_prefer_reorders(bundle):
    _, manifest = bundle
    names = [name for name, _ in engine_candidates(manifest)]
    assert names == ["cpu-openvino-fp32", "cpu-onnxruntime-fp32"]
    names = [name for name, _ in engine_candidates(manifest, prefer=("cpu-onnxruntime-fp32",))]
    assert names[0] == "cpu-onnxruntime-fp32"
    providers = dict(engine_candidates(manifest, options=EngineOptions(ort_providers=("CUDAExecutionProvider",))))
    assert providers["cpu-onnxruntime-fp32"] == ["CPUExecutionProvider"]  # CUDA not installed here: filtered


def test_no_runnable_target_is_refused_naming_what_the_bundle_and_the_device_have(bundle):
    folder, manifest = bundle
    m = copy.deepcopy(dict(manifest))
    m["targets"] = {
        "jetson-orin-int8": {**m["targets"]["cpu-onnxruntime-fp32"], "runtime": "tensorrt"},
        "intel-npu-fp16": {**m["targets"]["cpu-openvino-fp32"], "device": "NPU"},
    }
    with pytest.raises(EngineError) as info:
        open_engine(folder, m)
    text = str(info.value)
    assert "jetson-orin-int8 (tensorrt)" in text and "intel-npu-fp16 (openvino, NPU)" in text
    assert "CPUExecutionProvider" in text and "openvino devices: CPU" in text


def test_engine_misuse_is_a_clear_error(bundle):
    folder, manifest = bundle
    with pytest.raises(EngineError, match="camera delivers 480x640"):
        open_engine(folder, manifest, frame_hw=(480, 640))
    engine = open_engine(folder, manifest, prefer=["onnxruntime"])
    with pytest.raises(EngineError, match="bind_references"):
        engine.infer()
    with pytest.raises(EngineError, match="does not fit"):
        engine.bind_references(np.zeros((2, 2, 25), np.float32), np.zeros((2, 2, 25), np.float32))
    engine.bind_references(np.zeros((1, 1, 25), np.float32), np.ones((1, 1, 25), np.float32))
    with pytest.raises(EngineError, match="expected"):
        engine.infer(np.zeros((1, 10, 10, 25), np.uint16))
