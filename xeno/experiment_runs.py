"""Executing the xeno experiment: train and score every (arm, model, fold, seed) in the work folder,
on ``XENO_WORKERS`` processes, and write ``results.json`` and ``rows.json.gz``; ``reanalyse``
recomputes the results from a finished run's rows."""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import learn_projection_file, simulate_folders
from xenoedge.xeno.experiment_protocol import (
    CROP_TRANSFERRED,
    ICG_LABELS,
    MALPERFUSION,
    MALPERFUSION_LABELS,
    PROTOCOLS,
    SPECIES,
    SURGICAL_PATHOLOGICAL,
    Arm,
    Log,
    Preset,
    protocol_arms,
)

from xenoedge.errors import UnknownNameError


def _records_of(dataset, keys: set, species: str | None = None):
    return [r for r in dataset.records if r.subject_key in keys and (species is None or r.species == species)]


def _train_arm(
    work: Path, preset: Preset, arm: Arm, model: str, options: dict, data: Path, split, seed: int, fold: int,
    projections: tuple[Path, ...],
) -> Path:  # fmt: skip
    from xenoedge.xeno.train import TrainConfig, train

    train_ids = tuple(sorted(r.image_id for r in split.train if r.species == arm.target))
    val_ids = tuple(sorted(r.image_id for r in split.val if r.species == arm.target))
    config = TrainConfig(
        data=str(data),
        model=model,
        model_options=options,
        image_ids=train_ids + val_ids,
        val_image_ids=val_ids,
        projections=tuple(str(p) for p in projections),
        augment_labels=arm.augment_labels,
        relabel_threshold=0.5 if arm.domain == "crop" else None,
        organ_transplantation=arm.organ_transplantation,
        label_balanced=arm.label_balanced,
        steps=preset.max_steps,
        batch_size=preset.batch_size,
        crop=preset.crop,
        lr=preset.lr,
        seed=seed,
        checkpoint_every=preset.max_steps,
        val_every=preset.val_every,
        patience=preset.patience,
        min_delta=preset.min_delta,
        min_steps=preset.min_steps,
        lr_schedule="constant",
        threads=int(os.environ.get("XENO_THREADS", "1")),  # one thread: see docs/training.md
    )
    tag = "" if model == preset.model else f"-{model}"
    return train(config, work / "runs" / f"{arm.name}{tag}-fold{fold}-seed{seed}")


def _score(checkpoint: Path, dataset, records, **tags) -> list[dict]:
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.evaluate import evaluate_model

    if not records:
        return []
    model, _ = load_model(checkpoint)
    evaluation = evaluate_model(model, dataset, [dataset.index_of(r.image_id) for r in records])
    return [
        {k: v for k, v in {**row, **tags}.items() if k != "image_id"}
        for row in evaluation.rows
        if row["label"] != evaluation.label_names[0]
    ]


def _run_one(work, preset, arm, model, model_options, folders, fold, seed, files) -> tuple[dict, list[dict]]:
    """Train one (arm, model, fold, seed) and score it on its fold's test subjects: (run record, rows)."""
    from xenoedge.xeno.dataset import SpectralDataset, fold_split

    started, cpu = time.perf_counter(), time.process_time()
    train_folder = "surgical_physiological" if arm.domain == "surgical" else "crop_seen"
    train_data = SpectralDataset.open(folders[train_folder])
    split = fold_split(train_data.records, preset.folds, fold, val_subjects=1, seed=0)
    test = {r.subject_key for r in split.test}
    checkpoint = _train_arm(work, preset, arm, model, model_options, folders[train_folder], split, seed, fold, files)
    state = json.loads((checkpoint / "state.json").read_text())
    tags = {"arm": arm.name, "model": model, "fold": fold, "seed": seed}
    rows: list[dict] = []
    if arm.domain == "surgical":
        for species in SPECIES if not arm.sources else (arm.target,):
            rows += _score(checkpoint, train_data, _records_of(train_data, test, species), data="physiological", **tags)
        extra = folders.get("surgical_physiological_scoring")
        if extra is not None and arm.target == "human":
            ds = SpectralDataset.open(extra)
            rows += _score(checkpoint, ds, _records_of(ds, test, "human"), data="physiological", **tags)
        for state_name in SURGICAL_PATHOLOGICAL:
            folder = folders.get(f"surgical_{state_name}")
            if folder is not None:
                ds = SpectralDataset.open(folder)
                rows += _score(checkpoint, ds, _records_of(ds, test, arm.target), data=state_name, **tags)
    else:
        for species in (preset.source_crop, preset.target_crop) if not arm.sources else (arm.target,):
            rows += _score(checkpoint, train_data, _records_of(train_data, test, species), data="seen", **tags)
        for state_name in CROP_TRANSFERRED:
            ds = SpectralDataset.open(folders[f"crop_{state_name}"])
            rows += _score(checkpoint, ds, _records_of(ds, test, arm.target), data=state_name, **tags)
    record = {"arm": arm.name, "model": model, "fold": fold, "seed": seed, "steps": state["step"],
              "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
              **state.get("validation", {})}  # fmt: skip
    return record, rows


def run(preset: Preset, work: Path, *, protocol: str = "paper", log: Log = print) -> dict:
    """Run every part; returns the results (also written to work/results.json)."""

    if protocol not in PROTOCOLS:
        raise UnknownNameError("protocol", protocol, PROTOCOLS)
    started, cpu_started = time.perf_counter(), time.process_time()
    work.mkdir(parents=True, exist_ok=True)
    folders = simulate_folders(work, preset, protocol, log)
    paper = protocol == "paper"
    pairing = "all" if paper else "same-subject"

    # Projections: learnt in the source species from all its subjects (never the target's).
    projections: dict[tuple[str, str], Path] = {}
    surgical_sources = [folders["surgical_physiological"], *(folders[f"source_{s}"] for s in MALPERFUSION)]
    for species in ("pig", "rat"):
        if paper:
            projections[(species, "malperfusion")] = learn_projection_file(
                surgical_sources, species, MALPERFUSION, "physiological", preset.projection_steps,
                work / f"projections-{species}-malperfusion.npz", log, organs=MALPERFUSION_LABELS, pairing=pairing,
                max_images=preset.projection_images,
            )  # fmt: skip
            projections[(species, "icg")] = learn_projection_file(
                [folders["surgical_physiological"], folders["surgical_icg"]], species, ("icg",), "physiological",
                preset.projection_steps, work / f"projections-{species}-icg.npz", log, organs=ICG_LABELS,
                pairing=pairing, max_images=preset.projection_images, max_subjects=preset.projection_subjects,
            )  # fmt: skip
        else:
            projections[(species, "all")] = learn_projection_file(
                [*surgical_sources, folders["surgical_icg"]], species, SURGICAL_PATHOLOGICAL, "physiological",
                preset.projection_steps, work / f"projections-{species}-all.npz", log, pairing=pairing,
                max_images=preset.projection_images,
            )  # fmt: skip
    projections[(preset.source_crop, "crop")] = learn_projection_file(
        [folders["crop_seen"], *(folders[f"crop_{s}"] for s in CROP_TRANSFERRED)], preset.source_crop,
        CROP_TRANSFERRED, "healthy", preset.projection_steps, work / f"projections-{preset.source_crop}.npz", log,
        pairing=pairing, max_images=preset.projection_images, max_subjects=preset.projection_subjects,
    )  # fmt: skip

    options = dict(preset.model_options)
    rows: list[dict] = []
    runs: list[dict] = []
    arms = [
        a for a in protocol_arms(protocol, (preset.source_crop, preset.target_crop)) if a.name not in preset.skip_arms
    ]
    jobs = [(arm, preset.model, options, preset.seeds) for arm in arms]
    jobs += [(arm, "pixel-mlp", {}, preset.seeds[:1]) for arm in arms if arm.name in preset.pixel_arms]
    if preset.model != "unet-edge":
        jobs += [(arm, "unet-edge", {"pool": 2}, preset.seeds) for arm in arms if arm.name in preset.edge_arms]
    tasks = []
    for arm, model, model_options, seeds in jobs:
        for fold in range(preset.folds):
            for seed in seeds:
                tasks.append((work, preset, arm, model, model_options, folders, fold, seed,
                              tuple(projections[(s, arm.task)] for s in arm.sources)))  # fmt: skip
    workers = max(1, int(os.environ.get("XENO_WORKERS", "1")))
    if workers == 1:
        done = []
        for task in tasks:
            log(f"{task[2].name} ({task[3]}): fold {task[6] + 1}/{preset.folds}, seed {task[7]}")
            done.append(_run_one(*task))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        log(f"{len(tasks)} training runs on {workers} processes")
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_one, *task) for task in tasks]
            done = []
            for task, future in zip(tasks, futures, strict=True):
                done.append(future.result())
                log(f"done: {task[2].name} ({task[3]}) fold {task[6] + 1}, seed {task[7]}")
    for record, scored in done:  # task order: the same results whatever the number of processes
        runs.append(record)
        rows += scored
    cpu_children = sum(r["cpu_seconds"] for r in runs) if workers > 1 else 0.0

    results: dict = {"preset": asdict(preset), "protocol": protocol, "runs": runs}
    results.update(analyse(rows, preset, protocol, runs))
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["cpu_seconds"] = round(time.process_time() - cpu_started + cpu_children, 1)
    results["workers"] = workers
    results["summary"]["seconds"] = results["seconds"]
    results["summary"]["cpu_seconds"] = results["cpu_seconds"]
    with gzip.open(work / "rows.json.gz", "wt") as f:
        json.dump(rows, f)
    _write_json(work / "results.json", results)
    return results


def reanalyse(work: Path) -> dict:
    """Recompute tables and summary from a finished run's ``rows.json.gz`` and ``results.json``
    (no training): for a changed analysis or report on the same scores. Rewrites results.json."""
    previous = json.loads((work / "results.json").read_text())
    with gzip.open(work / "rows.json.gz", "rt") as f:
        rows = json.load(f)
    fields = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in previous["preset"].items()}  # fmt: skip
    preset = Preset(**fields)
    results = {k: previous[k] for k in ("preset", "protocol", "runs")}
    results.update(analyse(rows, preset, previous["protocol"], previous["runs"]))
    for key in ("seconds", "cpu_seconds", "workers"):
        if key in previous:
            results[key] = previous[key]
            results["summary"][key] = previous[key]
    _write_json(work / "results.json", results)
    return results


def _write_json(path: Path, data: dict) -> None:
    from xenoedge.atomic import atomic_write

    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, allow_nan=True).encode()))
