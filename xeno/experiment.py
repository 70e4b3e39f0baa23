"""``xenoedge experiment xeno``: the xeno-learning paper's design on simulated data.

Parts (DESIGN.md section 1; issue 4):

1. In-species vs direct cross-species transfer: train on one species' physiological images,
   test on every species' held-out physiological images.
2. Human trained on physiological data only, tested on held-out human malperfused and ICG
   tissue: baseline vs + pig projections vs + rat projections vs + both, and the effect on
   physiological DSC.
3. Crops: a stress state learnt in a source crop, transferred to a target crop that has only
   healthy training data (projections relabel healthy leaf pixels as stressed leaf/lesion).

Every condition runs with several seeds; the report gives mean ± std over seeds. Data are
simulated into ``work/`` (physiological and pathological folders per domain, the same
subjects in both); test subjects never appear in training, validation or projection learning
of the target species.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration.errors import UnknownNameError

SURGICAL_PATHOLOGICAL = ("malperfused_arterial", "malperfused_venous", "icg")
CROP_STRESS = ("drought", "nitrogen_deficiency", "lesion")


@dataclass(frozen=True)
class Preset:
    name: str
    height: int
    width: int
    subjects: int  # per species
    images_phys: int  # per subject
    images_path: int  # per subject
    model: str
    steps: int
    batch_size: int
    crop: int
    seeds: tuple[int, ...]
    projection_steps: int
    source_crop: str = "wheat"
    target_crop: str = "maize"


PRESETS = {
    "tiny": Preset("tiny", 24, 32, 3, 1, 1, "pixel-mlp", 6, 2, 16, (0,), 5),
    "quick": Preset("quick", 48, 64, 6, 6, 3, "pixel-mlp", 300, 8, 48, (0, 1, 2), 100),
    "full": Preset("full", 96, 128, 8, 6, 4, "unet-small", 1000, 8, 64, (0, 1, 2), 100),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("experiment preset", name, sorted(PRESETS))
    return PRESETS[name]


Log = Callable[[str], None]


def _simulate(work: Path, preset: Preset, log: Log) -> dict[str, Path]:
    from xeno.simulate_dataset import DatasetSpec, write_dataset

    folders = {}
    jobs = {
        "surgical_phys": ("surgical", ("human", "pig", "rat"), ("physiological",), preset.images_phys, 0.0),
        "surgical_path": ("surgical", ("human", "pig", "rat"), None, preset.images_path, 1.0),
        "crop_phys": ("crop", (preset.source_crop, preset.target_crop), ("healthy",), preset.images_phys, 0.0),
        "crop_path": ("crop", (preset.source_crop, preset.target_crop), None, preset.images_path, 1.0),
    }
    for name, (domain, species, states, images, p_path) in jobs.items():
        folder = work / "data" / name
        if not (folder / "index.json").is_file():
            log(f"simulating {name}")
            spec = DatasetSpec(
                domain=domain,
                species=species,
                states=states,
                subjects_per_species=preset.subjects,
                images_per_subject=images,
                height=preset.height,
                width=preset.width,
                pathological_probability=p_path,
                seed=7,
            )
            write_dataset(folder, spec)
        folders[name] = folder
    return folders


def _test_subjects(dataset) -> set[tuple[str, str]]:
    from xeno.dataset import split_by_subject

    split = split_by_subject(dataset.records, val_fraction=0.0, test_fraction=0.34, seed=0)
    return {r.subject_key for r in split.test}


def learn_projection_file(
    folders: list[Path], species: str, states: tuple[str, ...], healthy: str, steps: int, out: Path, log: Log
) -> Path:
    """Maps healthy -> each state in ``species``; states without any image pair are skipped (logged)."""
    from xeno.projections import (
        ProjectionError,
        combine,
        learn_projections,
        organ_samples_from_folder,
        save_projections,
    )

    samples, wavelengths = [], None
    for folder in folders:
        found, wavelengths = organ_samples_from_folder(folder, species)
        samples.extend(found)
    sets = []
    for state in states:
        try:
            sets.append(
                learn_projections(
                    samples,
                    state=state,
                    physiological=healthy,
                    source_species=species,
                    wavelengths_nm=wavelengths,
                    steps=steps,
                )
            )
        except ProjectionError as exc:
            log(f"{species}: no maps for {state}: {exc}")
    if not sets:
        raise ProjectionError(f"{species}: no projection could be learnt for any of {', '.join(states)}")
    return save_projections(out, combine(sets))


def _train(
    work: Path, data: Path, name: str, image_ids, preset: Preset, seed: int, projections=(), relabel=None
) -> Path:
    from xeno.train import TrainConfig, train

    config = TrainConfig(
        data=str(data),
        model=preset.model,
        image_ids=tuple(sorted(image_ids)),
        projections=tuple(str(p) for p in projections),
        relabel_threshold=relabel,
        steps=preset.steps,
        batch_size=preset.batch_size,
        crop=preset.crop,
        seed=seed,
        checkpoint_every=preset.steps,
        val_fraction=0.0,
    )
    return train(config, work / "runs" / f"{name}-seed{seed}")


def _evaluate(checkpoint: Path, dataset, records):
    from xeno.checkpoint import load_model
    from xeno.evaluate import evaluate_model

    model, _ = load_model(checkpoint)
    return evaluate_model(model, dataset, [dataset.index_of(r.image_id) for r in records])


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "values": [float(x) for x in v]}


def run(preset: Preset, work: Path, *, log: Log = print) -> dict:
    """Run all three parts; returns the results (also written to work/results.json)."""
    from xeno.dataset import SpectralDataset

    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    folders = _simulate(work, preset, log)
    results: dict = {"preset": asdict(preset)}

    # Part 1: in-species vs cross-species transfer on physiological data.
    phys = SpectralDataset.open(folders["surgical_phys"])
    test = _test_subjects(phys)
    species = ("human", "pig", "rat")
    part1: dict = {}
    for source in species:
        train_ids = [r.image_id for r in phys.records if r.species == source and r.subject_key not in test]
        for seed in preset.seeds:
            log(f"part 1: train {source}, seed {seed}")
            checkpoint = _train(work, folders["surgical_phys"], f"p1-{source}", train_ids, preset, seed)
            for target in species:
                held_out = [r for r in phys.records if r.species == target and r.subject_key in test]
                dsc = _evaluate(checkpoint, phys, held_out).mean_dsc()
                part1.setdefault(source, {}).setdefault(target, []).append(dsc)
    results["part1_transfer"] = {s: {t: _mean_std(v) for t, v in row.items()} for s, row in part1.items()}

    # Part 2: human physiological-only training, tested on human pathological tissue.
    path = SpectralDataset.open(folders["surgical_path"])
    projections = {
        sp: learn_projection_file(
            [folders["surgical_phys"], folders["surgical_path"]],
            sp,
            SURGICAL_PATHOLOGICAL,
            "physiological",
            preset.projection_steps,
            work / f"projections-{sp}.npz",
            log,
        )
        for sp in ("pig", "rat")
    }
    conditions = {
        "baseline": (),
        "+pig": (projections["pig"],),
        "+rat": (projections["rat"],),
        "+pig+rat": (projections["pig"], projections["rat"]),
    }
    human_train = [r.image_id for r in phys.records if r.species == "human" and r.subject_key not in test]
    human_phys_test = [r for r in phys.records if r.species == "human" and r.subject_key in test]
    human_path_test = [r for r in path.records if r.species == "human" and r.subject_key in test]
    part2: dict = {}
    for condition, files in conditions.items():
        for seed in preset.seeds:
            log(f"part 2: {condition}, seed {seed}")
            checkpoint = _train(work, folders["surgical_phys"], f"p2-{condition}", human_train, preset, seed, files)
            row = part2.setdefault(condition, {})
            row.setdefault("physiological", []).append(_evaluate(checkpoint, phys, human_phys_test).mean_dsc())
            evaluation = _evaluate(checkpoint, path, human_path_test)
            for state in SURGICAL_PATHOLOGICAL:
                row.setdefault(state, []).append(evaluation.mean_dsc(state=state))
    results["part2_human_pathology"] = {c: {k: _mean_std(v) for k, v in row.items()} for c, row in part2.items()}

    # Part 3: crops. Source crop's stress maps transferred to a healthy-only target crop.
    crop_phys = SpectralDataset.open(folders["crop_phys"])
    crop_path = SpectralDataset.open(folders["crop_path"])
    crop_test = _test_subjects(crop_phys)
    crop_projection = learn_projection_file(
        [folders["crop_phys"], folders["crop_path"]],
        preset.source_crop,
        CROP_STRESS,
        "healthy",
        preset.projection_steps,
        work / f"projections-{preset.source_crop}.npz",
        log,
    )
    target_train = [
        r.image_id for r in crop_phys.records if r.species == preset.target_crop and r.subject_key not in crop_test
    ]
    target_test = [r for r in crop_path.records if r.species == preset.target_crop and r.subject_key in crop_test]
    target_healthy_test = [
        r for r in crop_phys.records if r.species == preset.target_crop and r.subject_key in crop_test
    ]
    part3: dict = {}
    for condition, files in {"baseline": (), f"+{preset.source_crop}": (crop_projection,)}.items():
        for seed in preset.seeds:
            log(f"part 3: {condition}, seed {seed}")
            checkpoint = _train(
                work, folders["crop_phys"], f"p3-{condition}", target_train, preset, seed, files, relabel=0.5
            )
            evaluation = _evaluate(checkpoint, crop_path, target_test)
            row = part3.setdefault(condition, {})
            for label in ("stressed_leaf", "lesion"):
                table = evaluation.table("label")
                row.setdefault(label, []).append(table.get(label, {"mean": float("nan")})["mean"])
            row.setdefault("healthy_leaf (healthy plants)", []).append(
                _evaluate(checkpoint, crop_phys, target_healthy_test).table("label").get("healthy_leaf", {}).get("mean")
            )
    results["part3_crops"] = {c: {k: _mean_std(v) for k, v in row.items()} for c, row in part3.items()}
    results["seconds"] = round(time.perf_counter() - started, 1)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _fmt(cell: dict) -> str:
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def write_report(results: dict, path: Path, command: str) -> Path:
    """Markdown results document with tables and a figure next to it (``<stem>.png``)."""
    preset = results["preset"]
    lines = [
        "# Xeno-learning on simulated data",
        "",
        f"Produced by `{command}` (preset `{preset['name']}`: {preset['height']}×{preset['width']} px, "
        f"{preset['subjects']} subjects per species, model `{preset['model']}`, {preset['steps']} steps, "
        f"seeds {list(preset['seeds'])}; {results['seconds']:.0f} s on this machine). "
        "Values are mean DSC over foreground classes, mean ± std over seeds; test subjects are held out.",
        "",
        "## 1. In-species vs direct cross-species transfer (physiological tissue)",
        "",
        "| trained on \\ tested on | " + " | ".join(results["part1_transfer"]) + " |",
        "|---|" + "---|" * len(results["part1_transfer"]),
    ]
    for source, row in results["part1_transfer"].items():
        lines.append(f"| {source} | " + " | ".join(_fmt(row[t]) for t in results["part1_transfer"]) + " |")
    part2 = results["part2_human_pathology"]
    columns = list(next(iter(part2.values())))
    lines += [
        "",
        "## 2. Human, trained on physiological data only, tested on human pathological tissue",
        "",
        "| training | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for condition, row in part2.items():
        lines.append(f"| {condition} | " + " | ".join(_fmt(row[c]) for c in columns) + " |")
    part3 = results["part3_crops"]
    columns3 = list(next(iter(part3.values())))
    lines += [
        "",
        f"## 3. Crops: {preset['source_crop']} stress maps transferred to healthy-only {preset['target_crop']}",
        "",
        "DSC of the stress classes on held-out stressed target plants, and of healthy leaf on held-out healthy ones.",
        "",
        "| training | " + " | ".join(columns3) + " |",
        "|---|" + "---|" * len(columns3),
    ]
    for condition, row in part3.items():
        lines.append(f"| {condition} | " + " | ".join(_fmt(row[c]) for c in columns3) + " |")
    lines += ["", "## What the numbers say", "", *_findings(results)]
    figure = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    _plot(results, figure)
    lines += ["", f"![results]({figure.name})", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


def _findings(results: dict) -> list[str]:
    """Plain statements computed from the results (the document must not claim what it did not measure)."""
    out = []
    part1 = results["part1_transfer"]
    same = np.mean([part1[s][s]["mean"] for s in part1])
    cross = np.mean([part1[s][t]["mean"] for s in part1 for t in part1 if s != t])
    out.append(
        f"- Direct cross-species transfer: mean DSC {cross:.2f} against {same:.2f} in-species "
        f"({same - cross:+.2f} lost)."
    )
    part2 = results["part2_human_pathology"]
    base = part2["baseline"]
    for condition, row in part2.items():
        if condition == "baseline":
            continue
        gains = ", ".join(
            f"{state} {base[state]['mean']:.2f} → {row[state]['mean']:.2f}" for state in row if state != "physiological"
        )
        change = row["physiological"]["mean"] - base["physiological"]["mean"]
        out.append(f"- Human {condition}: {gains}; physiological DSC {change:+.2f}.")
    part3 = results["part3_crops"]
    for condition, row in part3.items():
        if condition == "baseline":
            continue
        cells = ", ".join(f"{k} {part3['baseline'][k]['mean']:.2f} → {v['mean']:.2f}" for k, v in row.items())
        out.append(f"- Crops {condition}: {cells}.")
    return out


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    part1 = results["part1_transfer"]
    names = list(part1)
    grid = np.array([[part1[s][t]["mean"] for t in names] for s in names])
    axes[0].imshow(grid, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            axes[0].text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white")
    axes[0].set_xticks(range(len(names)), names)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].set_xlabel("tested on")
    axes[0].set_ylabel("trained on")
    axes[0].set_title("1. cross-species transfer (DSC)")
    for ax, key, title in (
        (axes[1], "part2_human_pathology", "2. human pathology (DSC)"),
        (axes[2], "part3_crops", "3. crops (DSC)"),
    ):
        table = results[key]
        conditions = list(table)
        columns = list(next(iter(table.values())))
        width = 0.8 / len(conditions)
        for k, condition in enumerate(conditions):
            means = [table[condition][c]["mean"] for c in columns]
            stds = [table[condition][c]["std"] for c in columns]
            ax.bar(np.arange(len(columns)) + k * width, means, width, yerr=stds, label=condition)
        ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, columns, rotation=20, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
