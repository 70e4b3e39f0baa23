"""Executing the xeno experiment: train and score every (arm, model, fold, seed) in the work folder,
on ``XENO_WORKERS`` processes, and write ``results.json`` and ``rows.json.gz``; ``reanalyse``
recomputes the results from a finished run's rows."""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import RunAll, learn_projection_file_quietly, simulate_folders, worker_pool
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

from xenoedge.errors import UnknownNameError, XenoedgeError


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
        augment_blend=arm.augment_blend,
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


def _projection_files(
    work: Path, preset: Preset, protocol: str, folders: dict[str, Path], log: Log, run_all: RunAll
) -> dict[tuple[str, str], Path]:
    """(source species, task) -> projection file, learnt in the source species from all its
    subjects (never the target's), on ``run_all``'s workers; files already there are kept."""
    paper = protocol == "paper"
    options = {"pairing": "all" if paper else "same-subject", "max_images": preset.projection_images}
    steps = preset.projection_steps
    surgical_sources = [folders["surgical_physiological"], *(folders[f"source_{s}"] for s in MALPERFUSION)]
    jobs: dict[tuple[str, str], tuple] = {}
    # The crop job first: it learns by far the most maps (all pairs of 4 subjects' leaves), so
    # it must not start last on a worker.
    jobs[(preset.source_crop, "crop")] = (
        [folders["crop_seen"], *(folders[f"crop_{s}"] for s in CROP_TRANSFERRED)], preset.source_crop,
        CROP_TRANSFERRED, "healthy", steps, work / f"projections-{preset.source_crop}.npz",
        {"max_subjects": preset.projection_subjects},
    )  # fmt: skip
    for species in ("pig", "rat"):
        if paper:
            jobs[(species, "malperfusion")] = (
                surgical_sources, species, MALPERFUSION, "physiological", steps,
                work / f"projections-{species}-malperfusion.npz", {"organs": MALPERFUSION_LABELS},
            )  # fmt: skip
            jobs[(species, "icg")] = (
                [folders["surgical_physiological"], folders["surgical_icg"]], species, ("icg",), "physiological",
                steps, work / f"projections-{species}-icg.npz",
                {"organs": ICG_LABELS, "max_subjects": preset.projection_subjects},
            )  # fmt: skip
        else:
            jobs[(species, "all")] = (
                [*surgical_sources, folders["surgical_icg"]], species, SURGICAL_PATHOLOGICAL, "physiological",
                steps, work / f"projections-{species}-all.npz", {},
            )  # fmt: skip
    calls = [(partial(learn_projection_file_quietly, **options, **job[-1]), job[:-1]) for job in jobs.values()]
    files = {}
    for key, (path, lines) in zip(jobs, run_all(calls, None), strict=True):
        for line in lines:
            log(line)
        files[key] = path
    return files


def _training_tasks(
    work: Path, preset: Preset, protocol: str, folders: dict[str, Path], projections: dict[tuple[str, str], Path]
) -> list[tuple]:
    """``_run_one``'s arguments for every (arm, model, fold, seed) of the preset."""
    options = dict(preset.model_options)
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
    # The crop runs last: they are the shortest (~9 s against ~14 s on the quick preset), so the
    # workers finish closer together (longest first). Every run is deterministic: order changes no result.
    return sorted(tasks, key=lambda task: task[2].domain == "crop")


def run(
    preset: Preset,
    work: Path,
    *,
    protocol: str = "paper",
    log: Log = print,
    state_deviation: float | dict[str, float] | None = None,
) -> dict:
    """Run every part; returns the results (also written to work/results.json). ``state_deviation``:
    simulate every species' states at this deviation, or {species: deviation} for some species
    (docs/simulator.md; None: the default, 1)."""

    if protocol not in PROTOCOLS:
        raise UnknownNameError("protocol", protocol, PROTOCOLS)
    started, cpu_started, cpu_children = time.perf_counter(), time.process_time(), _children_cpu_seconds()
    work.mkdir(parents=True, exist_ok=True)
    workers = max(1, int(os.environ.get("XENO_WORKERS", "1")))
    with worker_pool(workers) as run_all:
        folders = simulate_folders(work, preset, protocol, log, run_all, state_deviation)
        projections = _projection_files(work, preset, protocol, folders, log, run_all)
        tasks = _training_tasks(work, preset, protocol, folders, projections)
        log(f"{len(tasks)} training runs on {workers} process{'es' if workers > 1 else ''}")

        def finished(i: int) -> None:
            arm, model, fold, seed = tasks[i][2].name, tasks[i][3], tasks[i][6], tasks[i][7]
            log(f"done {i + 1}/{len(tasks)}: {arm} ({model}) fold {fold + 1}/{preset.folds}, seed {seed}")

        done = run_all([(_run_one, task) for task in tasks], finished)
    runs: list[dict] = []
    rows: list[dict] = []
    for record, scored in done:  # task order: the same results whatever the number of processes
        runs.append(record)
        rows += scored
    # The pool's processes have been joined, so their CPU time is in the children's total.
    cpu_children = _children_cpu_seconds() - cpu_children

    from xenoedge.xeno.simulate_dataset import state_ranges_json

    results: dict = {"preset": asdict(preset), "protocol": protocol, "state_deviation": state_deviation, "runs": runs}
    # The strengths simulated (the data sets' own record, which simulate_folders checked); the report quotes them.
    results["state_ranges"] = state_ranges_json()
    results.update(analyse(rows, preset, protocol, runs))
    results["summary"]["state_deviation"] = state_deviation
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["cpu_seconds"] = round(time.process_time() - cpu_started + cpu_children, 1)
    results["workers"] = workers
    for key in ("seconds", "cpu_seconds", "workers"):  # as reanalyse copies them
        results["summary"][key] = results[key]
    with gzip.open(work / "rows.json.gz", "wt") as f:
        json.dump(rows, f)
    _write_json(work / "results.json", results)
    return results


def read_finished_run(work: Path) -> tuple[dict, Preset, list[dict]]:
    """(``results.json``, the ``Preset`` the run used, the scored rows of ``rows.json.gz``) of a
    finished run in ``work``: the preset as recorded, whatever the code's presets say now.
    Raises ``XenoedgeError`` naming the folder when either file is missing or unreadable."""
    work = Path(work)
    try:
        previous = json.loads((work / "results.json").read_text())
        with gzip.open(work / "rows.json.gz", "rt") as f:
            rows = json.load(f)
        fields = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                  for k, v in previous["preset"].items()}  # fmt: skip
        preset = Preset(**fields)
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise XenoedgeError(
            f"{work}: not a finished 'xenoedge experiment xeno' work folder (results.json with its "
            f"preset and rows.json.gz are written at the end of a run): {type(exc).__name__}: {exc}"
        ) from None
    return previous, preset, rows


def reanalyse(work: Path) -> dict:
    """Recompute tables and summary from a finished run's ``rows.json.gz`` and ``results.json``
    (no training): for a changed analysis or report on the same scores. Rewrites results.json."""
    previous, preset, rows = read_finished_run(work)
    results = {k: previous[k] for k in ("preset", "protocol", "runs")}
    results["state_deviation"] = previous.get("state_deviation")
    if "state_ranges" in previous:
        results["state_ranges"] = previous["state_ranges"]
    results.update(analyse(rows, preset, previous["protocol"], previous["runs"]))
    results["summary"]["state_deviation"] = results["state_deviation"]
    for key in ("seconds", "cpu_seconds", "workers"):
        if key in previous:
            results[key] = previous[key]
            results["summary"][key] = previous[key]
    _write_json(work / "results.json", results)
    return results


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (joined) child processes."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _write_json(path: Path, data: dict) -> None:
    from xenoedge.atomic import atomic_write

    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, allow_nan=True).encode()))
