"""The accuracy gate: pixel agreement, DSC per class and drop vs the FP32 reference, gate messages, manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from xenoedge.export.accuracy import (
    AccuracyGateError,
    compare_to_reference,
    dice,
    gate,
    mean_dsc,
    pixel_agreement,
    unsupported_classes,
)
from xenoedge.export.errors import ExportError

NAMES = ["background", "liver", "kidney", "spleen"]


def maps(seed: int = 0, n: int = 3, shape=(20, 30)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.zeros(shape, np.uint8)
        m[2:10, 3:15] = 1
        m[12:18, 5:25] = 2
        m[rng.random(shape) < 0.02] = 0
        out.append(m)
    return out


def test_identical_artifact_has_no_drop():
    truth = maps()
    record = compare_to_reference(truth, [m.copy() for m in truth], truth, NAMES)
    assert record.pixel_agreement == 1.0
    assert record.reference_dsc["liver"] == record.artifact_dsc["liver"] == 1.0
    assert record.drop["liver"] == 0.0 and record.max_drop == 0.0
    assert record.reference_dsc["spleen"] is None and record.drop["spleen"] is None  # in no truth map
    assert record.truth == "labels" and record.n_images == 3 and record.n_pixels == 3 * 600
    gate(record, 0.0, unsupported_ok=("spleen",))


def test_drop_per_class_against_truth():
    truth = maps()
    reference = [m.copy() for m in truth]
    artifact = [m.copy() for m in truth]
    for m in artifact:
        m[12:18, 5:15] = 0  # half of every kidney lost
    record = compare_to_reference(reference, artifact, truth, NAMES)
    kidney = np.mean([dice(a, t, 2) for a, t in zip(artifact, truth, strict=True)])
    assert record.artifact_dsc["kidney"] == pytest.approx(kidney)
    assert record.drop["kidney"] == pytest.approx(1.0 - kidney)
    assert record.drop["liver"] == pytest.approx(0.0)
    assert record.pixel_agreement == pytest.approx(
        np.mean([np.mean(a == r) for a, r in zip(artifact, reference, strict=True)])
    )
    assert record.max_drop == pytest.approx(1.0 - kidney)


def test_gate_fails_a_class_without_validation_support_and_names_it():
    truth = maps()  # liver and kidney in every map, spleen in none
    record = compare_to_reference(truth, [m.copy() for m in truth], truth, NAMES)
    assert unsupported_classes(record) == ["spleen"]
    assert record.to_manifest()["classes"][3]["images"] == 0
    with pytest.raises(AccuracyGateError) as info:
        gate(record, 0.01, artifact="cpu-onnxruntime-int8")  # nothing dropped, but spleen was never checked
    message = str(info.value)
    assert message.startswith(
        "cpu-onnxruntime-int8: accuracy gate failed, 1 class(es) have no validation support (spleen)"
    )
    assert "spleen: no validation support (in none of the 3 labels maps)" in message
    assert "liver" not in message and "kidney" not in message
    assert set(info.value.failures) == {"spleen"}
    gate(record, 0.01, unsupported_ok=("spleen",))  # a caller may leave it ungated knowingly
    with pytest.raises(ExportError, match="unsupported_ok names no foreground class: background"):
        gate(record, 0.01, unsupported_ok=("background",))


def test_without_truth_scores_against_the_reference():
    reference = maps()
    artifact = [m.copy() for m in reference]
    artifact[0][2:10, 3:9] = 2  # liver pixels called kidney
    record = compare_to_reference(reference, artifact, None, NAMES)
    assert record.truth == "reference"
    assert record.reference_dsc["liver"] == 1.0 and record.reference_dsc["kidney"] == 1.0
    assert record.drop["liver"] > 0 and record.drop["kidney"] > 0


def test_gate_lists_failing_classes_worst_first():
    truth = maps()
    artifact = [m.copy() for m in truth]
    for m in artifact:
        m[12:18, 5:15] = 0  # kidney: -33 points
        m[2:10, 3:5] = 0  # liver: a little
    record = compare_to_reference(truth, artifact, truth, NAMES)
    gate(record, 0.5, unsupported_ok=("spleen",))  # loose enough
    with pytest.raises(AccuracyGateError) as info:
        gate(record, 0.01, artifact="cpu/model.int8.xml", unsupported_ok=("spleen",))
    message = str(info.value)
    assert message.startswith("cpu/model.int8.xml: accuracy gate failed, 2 class(es) dropped more than 1.00 DSC points")
    assert message.index("kidney") < message.index("liver")  # worst first
    assert f"(drop {100 * record.drop['kidney']:.2f} points)" in message
    assert "spleen" not in message and "background" not in message
    assert set(info.value.failures) == {"kidney", "liver"}
    assert isinstance(info.value, ExportError)
    with pytest.raises(ExportError, match="max_drop must be a number in"):
        gate(record, 5)


def test_manifest_is_plain_json():
    truth = maps()
    artifact = [m.copy() for m in truth]
    artifact[1][0:5, 0:5] = 3
    manifest = compare_to_reference(truth, artifact, truth, NAMES).to_manifest()
    assert json.loads(json.dumps(manifest)) == manifest
    assert [c["name"] for c in manifest["classes"]] == NAMES
    assert [c["id"] for c in manifest["classes"]] == [0, 1, 2, 3]
    assert manifest["classes"][3]["dsc_reference"] is None
    assert manifest["truth"] == "labels" and 0.9 < manifest["pixel_agreement"] < 1.0
    assert manifest["mean_dsc_reference"] == 1.0


def test_bad_input_is_named():
    a = maps()
    with pytest.raises(ExportError, match="1 reference, 3 artifact"):
        compare_to_reference(a[:1], a, None, NAMES)
    with pytest.raises(ExportError, match=r"artifact map 0: shape \(5, 5\) differs"):
        compare_to_reference(a[:1], [np.zeros((5, 5), np.uint8)], None, NAMES)
    with pytest.raises(ExportError, match=r"truth map 0: class ids 9\.\.9 outside 0\.\.3"):
        compare_to_reference(a[:1], a[:1], [np.full((20, 30), 9, np.uint8)], NAMES)
    with pytest.raises(ExportError, match="integer array"):
        compare_to_reference([np.zeros((2, 2), np.float32)], [np.zeros((2, 2), np.uint8)], None, NAMES)
    with pytest.raises(ExportError, match="at least one validation image"):
        compare_to_reference([], [], None, NAMES)
    with pytest.raises(ExportError, match="distinct names"):
        compare_to_reference(a, a, None, ["background"])


def test_frame_metrics():
    a = np.array([[0, 1], [2, 2]])
    assert pixel_agreement(a, a) == 1.0
    assert mean_dsc(a, a) == 1.0
    assert mean_dsc(np.zeros((2, 2), int), np.zeros((2, 2), int)) == 1.0  # background only: background counts
    with pytest.raises(ExportError, match="differ in shape"):
        pixel_agreement(a, a[:1])
