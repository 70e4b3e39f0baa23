"""The accuracy gate: compare an exported artifact's class maps with the FP32 PyTorch reference.

For a validation set of N images, each artifact (ONNX FP32/INT8, OpenVINO FP32/FP16/INT8 ...)
is scored against the same truth as the FP32 PyTorch reference:

- **pixel agreement** — fraction of all pixels whose class equals the reference's class;
- **DSC per class** — 2·|P∩G| / (|P| + |G|), computed per image over the images whose truth
  holds the class, averaged over those images (the convention of ``xenoedge.xeno.evaluate``). The
  truth G is the ground-truth label map when given, otherwise the reference's own prediction
  (then the reference scores 1.0 on every class it predicts and the artifact's DSC measures
  how well it reproduces the reference);
- **drop per class** — reference DSC − artifact DSC (positive: the artifact is worse).

:func:`gate` fails when any foreground class (id >= 1) drops by more than ``max_drop``
(absolute, DSC in [0, 1]: 0.01 = 1 DSC point); background is reported but not gated, as the
paper's organ DSC leaves it out. A foreground class absent from every truth map has no DSC
(None): the gate cannot vouch for it, so :func:`gate` fails it too ("no validation support"),
unless the caller names it in ``unsupported_ok`` (recorded as such in the manifest).
:meth:`AccuracyRecord.to_manifest` is what goes into the bundle manifest.

Only NumPy here: the device self-test may reuse the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from xenoedge.export.errors import ExportError
from xenoedge.xeno.evaluate import dice  # the one DSC definition, shared with training evaluation

__all__ = [
    "AccuracyGateError",
    "AccuracyRecord",
    "compare_to_reference",
    "dice",
    "gate",
    "mean_dsc",
    "pixel_agreement",
    "unsupported_classes",
]


class AccuracyGateError(ExportError):
    """An artifact whose accuracy dropped more than allowed; ``record`` and ``failures`` say where."""

    def __init__(self, message: str, record: AccuracyRecord, failures: dict[str, float]):
        self.record = record
        self.failures = failures
        super().__init__(message)


def pixel_agreement(pred: np.ndarray, expected: np.ndarray) -> float:
    """Fraction of pixels where two (H, W) class maps agree.

    >>> pixel_agreement(np.array([[1, 2]]), np.array([[1, 3]]))
    0.5
    """
    pred, expected = np.asarray(pred), np.asarray(expected)
    if pred.shape != expected.shape:
        raise ExportError(f"class maps differ in shape: {pred.shape} vs {expected.shape}")
    return float(np.mean(pred == expected)) if pred.size else 1.0


def mean_dsc(pred: np.ndarray, expected: np.ndarray) -> float:
    """Mean DSC of ``pred`` over the classes present in ``expected`` (both (H, W) integer maps).

    Background (0) is left out when any foreground class is present, so a map that is mostly
    background does not score well by getting the background right.

    >>> mean_dsc(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 2]]))
    0.6666666666666666
    """
    pred, expected = np.asarray(pred), np.asarray(expected)
    if pred.shape != expected.shape:
        raise ExportError(f"class maps differ in shape: {pred.shape} vs {expected.shape}")
    labels = [int(label) for label in np.unique(expected)]
    foreground = [label for label in labels if label != 0]
    return float(np.mean([dice(pred, expected, label) for label in (foreground or labels)]))


@dataclass(frozen=True)
class AccuracyRecord:
    """One artifact compared with the FP32 reference over ``n_images`` validation images.

    DSC dictionaries map class name -> DSC in [0, 1] (None: the class is in no truth map);
    ``drop`` maps class name -> reference DSC − artifact DSC. ``truth`` is ``"labels"`` when
    scored against ground truth, ``"reference"`` when against the reference's prediction.
    """

    label_names: tuple[str, ...]
    n_images: int
    n_pixels: int
    pixel_agreement: float
    truth: str
    reference_dsc: dict[str, float | None]
    artifact_dsc: dict[str, float | None]
    drop: dict[str, float | None]
    support_images: dict[str, int] = field(default_factory=dict)

    @property
    def foreground(self) -> tuple[str, ...]:
        """Names of the gated classes (every class but id 0, background)."""
        return self.label_names[1:]

    def _mean(self, values: dict[str, float | None]) -> float | None:
        scored = [values[name] for name in self.foreground if values[name] is not None]
        return float(np.mean(scored)) if scored else None

    @property
    def mean_reference_dsc(self) -> float | None:
        """Mean foreground DSC of the reference (None when no foreground class is in the truth)."""
        return self._mean(self.reference_dsc)

    @property
    def mean_artifact_dsc(self) -> float | None:
        """Mean foreground DSC of the artifact."""
        return self._mean(self.artifact_dsc)

    @property
    def max_drop(self) -> float:
        """Largest foreground drop (0.0 when nothing is scored)."""
        drops = [self.drop[name] for name in self.foreground if self.drop[name] is not None]
        return max(drops, default=0.0)

    def to_manifest(self) -> dict:
        """Plain-JSON dict for the bundle manifest (numbers rounded to 6 decimals)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(float(value), 6)

        mean_ref, mean_art = self.mean_reference_dsc, self.mean_artifact_dsc
        return {
            "n_images": self.n_images,
            "n_pixels": self.n_pixels,
            "truth": self.truth,
            "pixel_agreement": r(self.pixel_agreement),
            "mean_dsc_reference": r(mean_ref),
            "mean_dsc_artifact": r(mean_art),
            "mean_dsc_drop": None if mean_ref is None or mean_art is None else r(mean_ref - mean_art),
            "max_class_drop": r(self.max_drop),
            "classes": [
                {
                    "id": class_id,
                    "name": name,
                    "dsc_reference": r(self.reference_dsc[name]),
                    "dsc_artifact": r(self.artifact_dsc[name]),
                    "drop": r(self.drop[name]),
                    "images": self.support_images.get(name, 0),
                }
                for class_id, name in enumerate(self.label_names)
            ],
        }


def _check_maps(kind: str, maps: Sequence[np.ndarray], shapes: list[tuple[int, ...]] | None, n_labels: int) -> None:
    for number, value in enumerate(maps):
        value = np.asarray(value)
        if value.ndim != 2 or not np.issubdtype(value.dtype, np.integer):
            raise ExportError(f"{kind} map {number}: expected an (H, W) integer array, got {value.dtype} {value.shape}")
        if shapes is not None and value.shape != shapes[number]:
            raise ExportError(f"{kind} map {number}: shape {value.shape} differs from the reference's {shapes[number]}")
        if value.size and (int(value.min()) < 0 or int(value.max()) >= n_labels):
            raise ExportError(
                f"{kind} map {number}: class ids {int(value.min())}..{int(value.max())} outside 0..{n_labels - 1}"
            )


def compare_to_reference(
    reference_classes: Sequence[np.ndarray],
    artifact_classes: Sequence[np.ndarray],
    truth: Sequence[np.ndarray] | None,
    label_names: Sequence[str],
) -> AccuracyRecord:
    """Score an artifact's (H, W) uint8 class maps against the FP32 reference's, image by image.

    ``truth``: ground-truth (H, W) label maps, or None to score both against the reference.
    ``label_names``: class names by id (id 0 = background).

    >>> ref = [np.array([[0, 1], [1, 1]], np.uint8)]
    >>> art = [np.array([[0, 1], [1, 0]], np.uint8)]
    >>> record = compare_to_reference(ref, art, None, ["background", "liver"])
    >>> record.pixel_agreement, round(record.drop["liver"], 3)
    (0.75, 0.2)
    """
    names = tuple(str(name) for name in label_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ExportError(f"label_names must hold >= 2 distinct names (background first), got {list(names)}")
    if len(reference_classes) != len(artifact_classes) or (truth is not None and len(truth) != len(reference_classes)):
        counts = f"{len(reference_classes)} reference, {len(artifact_classes)} artifact"
        counts += "" if truth is None else f", {len(truth)} truth"
        raise ExportError(f"accuracy comparison needs one map per image from each source; got {counts}")
    if not reference_classes:
        raise ExportError("accuracy comparison needs at least one validation image")
    _check_maps("reference", reference_classes, None, len(names))
    shapes = [np.asarray(m).shape for m in reference_classes]
    _check_maps("artifact", artifact_classes, shapes, len(names))
    if truth is not None:
        _check_maps("truth", truth, shapes, len(names))
    targets = reference_classes if truth is None else truth

    per_class_ref: dict[str, list[float]] = {name: [] for name in names}
    per_class_art: dict[str, list[float]] = {name: [] for name in names}
    agree = total = 0
    for ref, art, gt in zip(reference_classes, artifact_classes, targets, strict=True):
        ref, art, gt = np.asarray(ref), np.asarray(art), np.asarray(gt)
        agree += int(np.count_nonzero(ref == art))
        total += ref.size
        for label in np.unique(gt):
            name = names[int(label)]
            per_class_ref[name].append(dice(ref, gt, int(label)))
            per_class_art[name].append(dice(art, gt, int(label)))

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    reference_dsc = {name: mean(per_class_ref[name]) for name in names}
    artifact_dsc = {name: mean(per_class_art[name]) for name in names}
    drop = {name: None if reference_dsc[name] is None else reference_dsc[name] - artifact_dsc[name] for name in names}
    return AccuracyRecord(
        label_names=names,
        n_images=len(reference_classes),
        n_pixels=total,
        pixel_agreement=agree / total if total else 1.0,
        truth="reference" if truth is None else "labels",
        reference_dsc=reference_dsc,
        artifact_dsc=artifact_dsc,
        drop=drop,
        support_images={name: len(per_class_ref[name]) for name in names},
    )


def unsupported_classes(record: AccuracyRecord) -> list[str]:
    """Foreground classes that no validation truth map holds (the gate has nothing to compare)."""
    return [name for name in record.foreground if record.support_images.get(name, 0) == 0]


def gate(
    record: AccuracyRecord, max_drop: float, *, artifact: str = "artifact", unsupported_ok: Sequence[str] = ()
) -> None:
    """Raise :class:`AccuracyGateError` when a foreground class's DSC dropped by more than ``max_drop``,
    or when a foreground class has no validation support (no truth map holds it).

    The message names the artifact and lists each failing class with reference DSC, artifact
    DSC and drop in DSC points (1 point = 0.01), worst first, then each class without support.
    ``unsupported_ok``: class names the caller knowingly leaves ungated (e.g. a label the data
    cannot show); they are not failed for lack of support.
    """
    if not isinstance(max_drop, int | float) or isinstance(max_drop, bool) or not 0 <= max_drop <= 1:
        raise ExportError(f"max_drop must be a number in [0, 1] (DSC, 0.01 = 1 point), got {max_drop!r}")
    unknown = sorted(set(unsupported_ok) - set(record.foreground))
    if unknown:
        raise ExportError(f"unsupported_ok names no foreground class: {', '.join(unknown)}")
    failures = {
        name: float(record.drop[name])
        for name in record.foreground
        if record.drop[name] is not None and record.drop[name] > max_drop
    }
    missing = [name for name in unsupported_classes(record) if name not in unsupported_ok]
    if not failures and not missing:
        return
    lines = [
        f"  {name}: DSC {record.reference_dsc[name]:.4f} -> {record.artifact_dsc[name]:.4f} "
        f"(drop {100 * value:.2f} points)"
        for name, value in sorted(failures.items(), key=lambda item: -item[1])
    ]
    lines += [
        f"  {name}: no validation support (in none of the {record.n_images} {record.truth} maps), so not gated"
        for name in missing
    ]
    parts = []
    if failures:
        parts.append(
            f"{len(failures)} class(es) dropped more than {100 * max_drop:.2f} DSC points vs the FP32 reference"
        )
    if missing:
        parts.append(
            f"{len(missing)} class(es) have no validation support ({', '.join(missing)}): give validation images "
            "that hold every class"
        )
    raise AccuracyGateError(
        f"{artifact}: accuracy gate failed, {'; '.join(parts)} (pixel agreement {100 * record.pixel_agreement:.2f}%, "
        f"{record.n_images} images, against {record.truth}):\n" + "\n".join(lines),
        record,
        {**failures, **{name: float("nan") for name in missing}},
    )
