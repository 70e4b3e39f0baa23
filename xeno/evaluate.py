"""Evaluation: DSC per class, per species and per state, confusion matrix, pictures.

DSC is computed per image and class, over classes present in the ground truth of that image
(2·|P∩G| / (|P| + |G|)); a class's state in an image is the state of most of its ground-truth
pixels. Tables average over (image, class) pairs; "mean DSC" averages the class means over
the non-background classes, as the xeno-learning paper reports organ DSC.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xenoedge.xeno.scene import NO_STATE


def predict(model, cube: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids for an (H, W, C) L1-normalised cube (padded to the model's multiple)."""
    return predict_batch(model, [cube])[0]


def predict_batch(model, cubes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``predict`` for (H, W, C) cubes of one shape in one forward pass: (H, W) uint8 each."""
    import torch
    import torch.nn.functional as F

    h, w, _ = cubes[0].shape
    if any(c.shape != cubes[0].shape for c in cubes):
        raise ValueError(f"predict_batch needs cubes of one shape, got {sorted({c.shape for c in cubes})}")
    multiple = int(getattr(model, "required_multiple", 1))
    x = torch.from_numpy(np.stack([c.transpose(2, 0, 1) for c in cubes]))
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    with torch.inference_mode():
        logits = model(x)
    return list(logits[:, :, :h, :w].argmax(dim=1).to(torch.uint8).numpy())


def predict_working(model, spectra: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 class ids from an edge-first model (``unet-edge``) given spectra already pooled.

    ``spectra`` (h, w, C) L1 spectra at the model's working size (the frame pooled
    ``model.input_pool`` times); the core's logits are upsampled bilinearly and cropped to
    ``frame_hw`` = (H, W), as the exported graph does.
    """
    import torch
    import torch.nn.functional as F

    h, w = frame_hw
    x = torch.from_numpy(np.ascontiguousarray(spectra.transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        logits = model.forward_working(x)
        logits = F.interpolate(logits, scale_factor=float(model.input_pool), mode="bilinear", align_corners=False)
    return logits[0, :, :h, :w].argmax(dim=0).to(torch.uint8).numpy()


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    p, g = pred == label, truth == label
    denominator = int(p.sum()) + int(g.sum())
    return 1.0 if denominator == 0 else 2.0 * int((p & g).sum()) / denominator


@dataclass
class Evaluation:
    label_names: list[str]
    state_names: list[str]
    rows: list[dict] = field(default_factory=list)  # one per (image, class present in truth)
    confusion: np.ndarray | None = None  # (K, K) pixel counts, rows = truth, columns = prediction

    def add_image(
        self,
        image_id: str,
        species: str,
        pred: np.ndarray,
        truth: np.ndarray,
        states: np.ndarray,
        subject: str | None = None,
    ) -> None:
        k = len(self.label_names)
        if self.confusion is None:
            self.confusion = np.zeros((k, k), dtype=np.int64)
        self.confusion += np.bincount(truth.astype(np.int64).ravel() * k + pred.ravel(), minlength=k * k).reshape(k, k)
        for label in np.unique(truth):
            mask = truth == label
            state_values = states[mask]
            state_values = state_values[state_values != NO_STATE]
            state = (
                self.state_names[int(np.bincount(state_values).argmax())]
                if state_values.size and self.state_names
                else "none"
            )
            self.rows.append(
                {
                    "image_id": image_id,
                    "species": species,
                    "label": self.label_names[int(label)],
                    "state": state,
                    "dsc": dice(pred, truth, int(label)),
                    **({} if subject is None else {"subject": subject}),
                }
            )

    def table(self, key: str, *, foreground_only: bool = True) -> dict[str, dict]:
        """Mean DSC, spread and count grouped by ``key`` (label, species or state)."""
        groups: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            if foreground_only and row["label"] == self.label_names[0]:
                continue
            groups[row[key]].append(row["dsc"])
        return {
            name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
            for name, v in sorted(groups.items())
        }

    def mean_dsc(self, **where: str) -> float:
        """Mean over foreground classes of the per-class mean DSC, over rows matching ``where``."""
        per_class: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            if row["label"] == self.label_names[0] or any(row[k] != v for k, v in where.items()):
                continue
            per_class[row["label"]].append(row["dsc"])
        return float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else float("nan")

    def to_json(self) -> dict:
        return {
            "mean_dsc": self.mean_dsc(),
            "per_label": self.table("label"),
            "per_species": self.table("species"),
            "per_state": self.table("state"),
            "labels": self.label_names,
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "rows": self.rows,
        }


def class_mean_dsc(rows: list[dict]) -> float:
    """Mean over classes of the per-class mean DSC of ``rows`` (NaN without rows)."""
    per_class: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        per_class[row["label"]].append(row["dsc"])
    return float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else float("nan")


def select_rows(rows: list[dict], *, labels=None, exclude=("background",), **where: str) -> list[dict]:
    """Rows matching ``where`` (key = value), with a label in ``labels`` (None: any) and not in ``exclude``."""
    return [
        r
        for r in rows
        if r["label"] not in exclude
        and (labels is None or r["label"] in labels)
        and all(r.get(k) == v for k, v in where.items())
    ]


def bootstrap_interval(
    rows: list[dict],
    statistic=class_mean_dsc,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    unit: str = "subject",
) -> dict:
    """Point estimate and percentile bootstrap interval over ``unit`` (default: subjects).

    Subjects are drawn with replacement (as many as there are), each bringing all of its rows;
    ``statistic(rows)`` is computed on each resample; the interval is the central ``level`` of
    those values. Returns ``{"value", "low", "high", "n" (rows = organ instances), "subjects"}``;
    NaN bounds without rows. Seeded: the same rows and seed give the same interval.
    """
    value = float(statistic(rows)) if rows else float("nan")
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(unit, row.get("image_id")))].append(row)
    keys = sorted(groups)
    out = {"value": value, "low": float("nan"), "high": float("nan"), "n": len(rows), "subjects": len(keys)}
    if not keys:
        return out
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = rng.integers(len(keys), size=len(keys))
        values.append(statistic([row for i in drawn for row in groups[keys[i]]]))
    tail = 100 * (1 - level) / 2
    out["low"], out["high"] = (float(v) for v in np.nanpercentile(values, [tail, 100 - tail]))
    return out


def paired_bootstrap(
    rows_a: list[dict],
    rows_b: list[dict],
    combine,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    unit: str = "subject",
) -> dict:
    """Bootstrap interval of ``combine(rows_a, rows_b)`` resampling the same subjects on both sides
    (e.g. a DSC difference between two models on the same test subjects)."""
    groups_a: dict[str, list[dict]] = defaultdict(list)
    groups_b: dict[str, list[dict]] = defaultdict(list)
    for row in rows_a:
        groups_a[str(row.get(unit))].append(row)
    for row in rows_b:
        groups_b[str(row.get(unit))].append(row)
    keys = sorted(set(groups_a) | set(groups_b))
    value = float(combine(rows_a, rows_b))
    out = {"value": value, "low": float("nan"), "high": float("nan"), "subjects": len(keys)}
    if not keys:
        return out
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = rng.integers(len(keys), size=len(keys))
        values.append(
            combine(
                [r for i in drawn for r in groups_a.get(keys[i], [])],
                [r for i in drawn for r in groups_b.get(keys[i], [])],
            )
        )
    tail = 100 * (1 - level) / 2
    out["low"], out["high"] = (float(v) for v in np.nanpercentile(values, [tail, 100 - tail]))
    return out


def subject_bootstrap(
    groups: dict[str, list[dict]],
    combine=None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Seed-averaged class-mean DSC of each group of rows, combined, with a bootstrap over subjects.

    ``groups`` maps a name to rows (``subject``, ``label``, ``dsc``, optional ``seed``). A group's
    statistic is the mean over training seeds of the mean over classes of the per-class mean
    DSC. Every resample draws the subjects (all groups' subjects together) with replacement and
    applies the same draw to every group, so paired quantities (a difference between two models
    on the same subjects, a gap-recovery ratio) keep their pairing. ``combine(values)`` gets a
    dict of arrays (one value per resample, the first being the data as they are) and returns
    one array; without it there must be one group. Vectorised: thousands of resamples of tens of
    thousands of rows take well under a second. Returns ``{"value", "low", "high", "n" (fewest
    organ instances per seed in any group), "subjects"}``.
    """
    subjects = sorted({str(r.get("subject", r.get("image_id"))) for rows in groups.values() for r in rows})
    out = {"value": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "subjects": len(subjects)}
    if not subjects or any(not rows for rows in groups.values()):
        return out
    where = {s: i for i, s in enumerate(subjects)}
    rng = np.random.default_rng(seed)
    n = len(subjects)
    weights = np.vstack([np.ones(n)] + [np.bincount(rng.integers(n, size=n), minlength=n) for _ in range(n_boot)])
    values, counts = {}, []
    for name, rows in groups.items():
        seeds = sorted({r.get("seed", 0) for r in rows})
        labels = sorted({r["label"] for r in rows})
        total = np.zeros((n, len(seeds), len(labels)))
        count = np.zeros_like(total)
        si, li = {v: i for i, v in enumerate(seeds)}, {v: i for i, v in enumerate(labels)}
        for r in rows:
            key = (where[str(r.get("subject", r.get("image_id")))], si[r.get("seed", 0)], li[r["label"]])
            total[key] += r["dsc"]
            count[key] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.einsum("bs,skl->bkl", weights, total) / np.einsum("bs,skl->bkl", weights, count)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                values[name] = np.nanmean(np.nanmean(mean, axis=2), axis=1)
        counts.append(len(rows) / len(seeds))
    if combine is None:
        if len(values) != 1:
            raise ValueError("subject_bootstrap needs combine for more than one group")
        combined = next(iter(values.values()))
    else:
        combined = np.asarray(combine(values), dtype=float)
    tail = 100 * (1 - level) / 2
    boots = combined[1:][np.isfinite(combined[1:])]
    out["value"] = float(combined[0])
    if boots.size:
        out["low"], out["high"] = (float(v) for v in np.percentile(boots, [tail, 100 - tail]))
    out["n"] = round(min(counts))
    return out


def checkpoint_dataset(data: str | os.PathLike, config: dict):
    """The data set folder ``data`` opened as a checkpoint of ``config`` (its ``config.json``) sees
    it: resampled to the checkpoint's sensor when it names one (a ``SpectralDataset``)."""
    from xenoedge.xeno.dataset import SpectralDataset

    from xenoedge.sensors import get_sensor

    return SpectralDataset.open(data, sensor=get_sensor(config["sensor"]) if config.get("sensor") else None)


def held_out_indices(
    records: Sequence, config: dict, *, species: Collection[str] | None = None, exclude_training: bool = True
) -> list[int]:
    """Indices of ``records`` (``ImageRecord``s) to evaluate a checkpoint of ``config`` on: only
    ``species`` (all when None), and with ``exclude_training`` none of the images of its train and
    val split."""
    used = set(config["split"]["train"]) | set(config["split"]["val"]) if exclude_training else set()
    return [i for i, r in enumerate(records) if r.image_id not in used and (species is None or r.species in species)]


def evaluate_model(model, dataset, indices: list[int], *, pictures: Path | None = None, max_pictures: int = 8):
    """Evaluate ``model`` on ``dataset`` images ``indices``; with ``pictures``, the first
    ``max_pictures`` images as ``<image id>_truth_vs_pred.png`` (``truth_vs_pred_picture``)."""
    from xenoedge.xeno.previews import pseudo_rgb

    result = Evaluation(dataset.label_set.names, list(dataset.states))
    colors = dataset.label_set.colors()
    for n, (sample, pred) in enumerate(_predictions(model, dataset, indices)):
        first_row = len(result.rows)
        result.add_image(
            sample.record.image_id,
            sample.record.species,
            pred,
            sample.labels,
            sample.states,
            subject=f"{sample.record.species}/{sample.record.subject}",
        )
        if pictures is not None and n < max_pictures:
            from xenoedge.devices.formats import write_rgb_png

            pictures.mkdir(parents=True, exist_ok=True)
            rgb = pseudo_rgb(sample.cube, dataset.wavelengths_out_nm)
            foreground = [r["dsc"] for r in result.rows[first_row:] if r["label"] != result.label_names[0]]
            dsc = f"{np.mean(foreground):.2f}" if foreground else "n/a"
            title = f"{sample.record.image_id} ({sample.record.species}): foreground mean DSC {dsc}"
            picture = truth_vs_pred_picture(rgb, sample.labels, pred, colors, result.label_names, title)
            write_rgb_png(pictures / f"{sample.record.image_id}_truth_vs_pred.png", picture)
    return result


EVALUATION_BATCH = 16  # images of one shape per forward pass (a batch costs far less than its images one by one)
EVALUATION_BATCH_BYTES = 64 << 20  # ... and at most this much input: full-size frames go one at a time


def _predictions(model, dataset, indices: list[int]) -> Iterator[tuple]:
    """(sample, (H, W) uint8 prediction) for each of ``indices`` in order, predicted in batches of
    consecutive images of one shape."""
    batch: list = []
    for i in indices:
        sample = dataset.load(i)
        if batch and (
            sample.cube.shape != batch[0].cube.shape
            or len(batch) == EVALUATION_BATCH
            or (len(batch) + 1) * sample.cube.nbytes > EVALUATION_BATCH_BYTES
        ):
            yield from zip(batch, predict_batch(model, [s.cube for s in batch]), strict=True)
            batch = []
        batch.append(sample)
    if batch:
        yield from zip(batch, predict_batch(model, [s.cube for s in batch]), strict=True)


def truth_vs_pred_picture(
    rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray, colors: np.ndarray, names: list[str], title: str
) -> np.ndarray:
    """Titled panels frame (pseudo-RGB) | ground truth over it | prediction over it, and a legend
    of class names and colours with each class's share of the prediction."""
    from xenoedge.xeno.previews import mask_picture

    return mask_picture(np.asarray(pred, np.uint8), colors, names, title, rgb=rgb, truth=np.asarray(truth, np.uint8))


def write_evaluation(result: Evaluation, out: Path) -> Path:
    """evaluation.json and confusion.png in ``out``."""
    from xenoedge.atomic import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "evaluation.json", lambda f: f.write(json.dumps(result.to_json(), indent=2).encode()))
    if result.confusion is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        counts = result.confusion
        conf = counts.astype(float) / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        k = len(result.label_names)
        size = max(6.0, 0.55 * k + 3)
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        image = ax.imshow(conf, cmap="Blues", vmin=0, vmax=1)
        for (r, c), value in np.ndenumerate(conf):
            if counts[r].sum():  # rows without truth pixels stay blank
                ax.text(c, r, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if value > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(k), result.label_names, rotation=60, ha="right")
        ax.set_yticks(range(k), [f"{n} ({counts[i].sum():,} px)" for i, n in enumerate(result.label_names)])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class (pixels)")
        ax.set_title(f"confusion: % of each true class's pixels, mean DSC {result.mean_dsc():.3f}")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's pixels (0-1)")
        fig.tight_layout()
        fig.savefig(out / "confusion.png", dpi=90)
        plt.close(fig)
    return out
