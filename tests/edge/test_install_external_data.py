"""ONNX external data: found without the onnx package, allowed inside the bundle, refused outside.

The test builds models with the real ``onnx`` package (a test dependency, not on the device) and
checks the device's own protobuf walk against it, then installs bundles whose model keeps its
weights in a listed file (it loads and self-tests on ONNX Runtime) or points outside the slot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
from onnx import external_data_helper, helper  # noqa: E402
from xenoedge.edge.flashing import BundleRejected, SlotStore, install_bundle  # noqa: E402
from xenoedge.edge.flashing.onnx_refs import OnnxParseError, external_data_locations  # noqa: E402

from tests.edge.install_fixtures import CROP_BUNDLE, ort_models, policy, unpacked_files, variant  # noqa: E402

#: The ONNX Runtime target's graphs, read from the manifest: its model first, then the classes-only
#: graph the engine loads when no confidence is asked for (when the target has one).
MODELS = ort_models(CROP_BUNDLE)
MODEL = MODELS[0]
TARGET_DIR = MODEL.rsplit("/", 1)[0]
WEIGHTS = f"{TARGET_DIR}/weights.bin"


def crop_model(tmp_path: Path, member: str = MODEL):
    _, files = unpacked_files(CROP_BUNDLE, tmp_path)
    return onnx.load_from_string(files[member])


def externalised(tmp_path: Path, location: str = "weights.bin", member: str = MODEL) -> tuple[bytes, bytes, list[str]]:
    """(model bytes, weights bytes, names of the external tensors) of the crop model's graph
    ``member`` saved with every initializer over 256 bytes (the weights; ONNX Runtime wants small
    shape tensors inline) in one external file, its location then set to ``location``."""
    model = crop_model(tmp_path, member)
    folder = tmp_path / f"ext-{member.replace('/', '_')}"
    folder.mkdir(exist_ok=True)
    onnx.save_model(model, folder / "m.onnx", save_as_external_data=True, location="weights.bin", size_threshold=256)
    saved = onnx.load(folder / "m.onnx", load_external_data=False)
    names = []
    for tensor in external_data_helper._get_all_tensors(saved):
        if external_data_helper.uses_external_data(tensor):
            names.append(tensor.name)
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
    return saved.SerializeToString(), (folder / "weights.bin").read_bytes(), names


def test_locations_match_what_onnx_itself_reads(tmp_path):
    model_bytes, _, names = externalised(tmp_path, "weights.bin")
    found = external_data_locations(model_bytes)
    assert sorted(name for name, _ in found) == sorted(names) and len(names) >= 2
    assert {location for _, location in found} == {"weights.bin"}
    assert external_data_locations(crop_model(tmp_path).SerializeToString()) == []


def test_tensors_in_subgraphs_and_attributes_are_found(tmp_path):
    external = helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], b"\0\0\x80?", raw=True)
    external_data_helper.set_external_data(external, location="../../../etc/shadow")
    external.ClearField("raw_data")
    const = helper.make_node("Constant", [], ["c"], value=external)
    branch = helper.make_graph([const], "then", [], [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1])])
    other = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("z", onnx.TensorProto.FLOAT, [1], [0.0]))],
        "else",
        [],
        [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1])],
    )
    node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1])],
    )
    data = helper.make_model(graph).SerializeToString()
    assert external_data_locations(data) == [("w", "../../../etc/shadow")]
    with pytest.raises(OnnxParseError):
        external_data_locations(data[:-3] + b"\xff\xff\xff")


def test_external_weights_inside_the_bundle_install_and_serve(tmp_path):
    """Every ONNX Runtime graph of the target keeps its weights in its own listed file, so the
    graph the engine picks for the self-test (full or classes-only) reads external data."""
    files, weights = {}, {}
    for i, member in enumerate(MODELS):
        location = "weights.bin" if i == 0 else f"weights-{i}.bin"
        model_bytes, weights[f"{TARGET_DIR}/{location}"], _ = externalised(tmp_path, location, member)
        files[member] = model_bytes
    assert WEIGHTS in weights
    bundle = variant(tmp_path / "ext.xeb", files=files | weights)
    store = SlotStore(tmp_path / "state")
    report = install_bundle(store, bundle, policy())
    assert report.selftest["passed"] and "onnxruntime" in report.selftest["engine"]
    for name, data in weights.items():
        assert (store.active().folder / name).read_bytes() == data


@pytest.mark.parametrize(
    "location",
    ["../../../../../../etc/hostname", "/etc/hostname", "weights-not-in-the-manifest.bin", "..\\..\\evil.bin"],
)
def test_external_data_outside_the_bundle_is_refused(tmp_path, location):
    model_bytes, weights, _ = externalised(tmp_path, location)
    bundle = variant(tmp_path / "bad.xeb", files={MODEL: model_bytes, WEIGHTS: weights})
    store = SlotStore(tmp_path / "state")
    with pytest.raises(BundleRejected, match="external data") as err:
        install_bundle(store, bundle, policy())
    assert err.value.reason == "external-data" and repr(location) in str(err.value)
    assert store.active() is None and list(store.staging_dir.iterdir()) == []
    assert list(store.slots_dir.iterdir()) == []


def test_garbage_model_file_is_refused_before_loading(tmp_path):
    bundle = variant(tmp_path / "garbage.xeb", files={MODEL: b"\x0a\xff\xff\xff\xff\x0f"})
    with pytest.raises(BundleRejected, match="not a readable ONNX model"):
        install_bundle(SlotStore(tmp_path / "state"), bundle, policy())


def test_mangled_models_give_a_parse_error_never_a_crash(tmp_path):
    """Seeded byte flips, truncations and insertions of a real model: the walk either returns
    locations or raises OnnxParseError (which the installer turns into a refusal)."""
    import numpy as np

    data = crop_model(tmp_path).SerializeToString()
    rng = np.random.default_rng(5)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(400):
        mangled = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            at = int(rng.integers(0, len(mangled)))
            action = int(rng.integers(0, 3))
            if action == 0:
                mangled[at] = int(rng.integers(0, 256))
            elif action == 1:
                del mangled[at:]
            else:
                mangled[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 12)), dtype=np.uint8))
            if not mangled:
                mangled = bytearray(b"\x08")
        try:
            external_data_locations(bytes(mangled))
            outcomes["parsed"] += 1
        except OnnxParseError:
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 0 and outcomes["refused"] > 0


def test_deeply_nested_subgraphs_are_refused_not_recursed():
    """200 levels of graph > node > attribute > graph, written directly in the wire format
    (onnx's own builder stops at protobuf's depth limit of 100 messages)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    graph = b""
    for _ in range(200):
        graph = field(1, field(5, field(6, graph)))  # GraphProto.node > NodeProto.attribute > .g
    with pytest.raises(OnnxParseError, match="deeper than"):
        external_data_locations(field(7, graph))
