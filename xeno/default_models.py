"""The default models shipped inside the package, and the recipe that reproduces each.

    python -m xenoedge.xeno.default_models [surgical|crop|all] [--work DIR]      (or: make default-models)

Both are ``unet-edge`` networks (edge-first: the frame is pooled p x p, a small U-Net gives
spatial context at the working size, logits are upsampled to the frame before the arg-max).
Target-species images are simulated at the sensor's full frame size, so the model is trained
and evaluated at the scale the device runs (docs/models.md has the measurements and the
comparison with the per-pixel baseline and the paper's reference network). The surgical
recipe writes ~7 GB of simulated cubes under ``--work`` and trains ~1 h on a 2-core CPU.

* ``surgical``: human target, Tivita profile, trained on human physiological images only with
  physiology-based augmentation from pig and rat projections (all three pathological states).
* ``crop``: handheld ``mosaic-5x5-nir`` profile; wheat, maize and tomato with every stress state
  labelled (healthy leaf, stressed leaf, lesion over soil).

Each lands in ``xeno/default_models/<name>/`` as ``config.json`` + ``model.pt`` (weights only,
no optimizer state) + ``evaluation.json`` (held-out subjects).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from xenoedge.errors import UnknownNameError

MODEL = "unet-edge"  # edge-first: pools the frame, spatial context at the working size (docs/models.md)
REFERENCE_MODEL = "unet-effb5"  # the paper's network, trained on the same data for comparison


@dataclass(frozen=True)
class Recipe:
    """How one default model is made. Target-species images are simulated at the sensor's full
    frame size (``height`` x ``width``), so the model trains and is evaluated at the scale it
    runs at on the device; projections are learnt from source-species images at
    ``projection_height`` x ``projection_width`` (spectra only, so size does not matter)."""

    name: str
    domain: str
    sensor: str
    train_species: tuple[str, ...]
    projection_species: tuple[str, ...]
    height: int
    width: int
    subjects: int
    images: int
    steps: int
    model_options: dict = field(default_factory=dict)
    crop: int = 256
    batch_size: int = 8
    projection_height: int = 96
    projection_width: int = 128
    projection_subjects: int = 4
    reference_steps: int = 1000
    seed: int = 0


RECIPES = {
    "surgical": Recipe(
        "surgical", "surgical", "tivita", ("human",), ("pig", "rat"), 480, 640, 10, 3, 2500, {"pool": 4}, crop=320
    ),
    "crop": Recipe(
        "crop", "crop", "mosaic-5x5-nir", ("wheat", "maize", "tomato"), (), 217, 409, 6, 3, 2500, {"pool": 2}, crop=128
    ),
}


def _progress(name: str, log):
    """A training progress callback that logs every 100 steps."""

    def report(step: int, steps: int, loss: float) -> None:
        if step % 100 == 0 or step == steps:
            log(f"{name}: step {step}/{steps} loss {loss:.4f}")

    return report


def default_model_dir(name: str) -> Path:
    """Folder of a shipped default model (``config.json``, ``model.pt``, ``evaluation.json``)."""
    if name not in RECIPES:
        raise UnknownNameError("default model", name, sorted(RECIPES))
    return Path(str(resources.files("xenoedge.xeno").joinpath("default_models", name)))


def checkpoint_or_default(checkpoint: str | os.PathLike) -> tuple[Path, str | None]:
    """``(folder, name)`` of a checkpoint given as a folder or as a default model's name (a name in
    ``RECIPES`` wins over a folder of that name): ``(default_model_dir(name), name)`` or
    ``(Path(checkpoint), None)``.

    >>> checkpoint_or_default("runs/a") == (Path("runs/a"), None)
    True
    >>> checkpoint_or_default("crop")[1]
    'crop'
    """
    name = str(checkpoint)
    if name in RECIPES:
        return default_model_dir(name), name
    return Path(checkpoint), None


def build(recipe: Recipe, work: Path, out: Path, log=print, *, reference: bool = False) -> dict:
    """Simulate, learn projections, train and evaluate ``recipe``; write the model to ``out``.

    ``reference=True`` trains the paper's reference network (``unet-effb5``, pooled like the
    recipe's model, ``recipe.reference_steps`` steps) on the same data, split and augmentation
    instead, and writes only its evaluation (``out/reference_evaluation.json``; the ~120 MB of
    weights stay in ``work``).
    """
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.dataset import SpectralDataset, split_by_subject
    from xenoedge.xeno.evaluate import evaluate_model
    from xenoedge.xeno.experiment import SURGICAL_PATHOLOGICAL, learn_projection_file
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.train import TrainConfig, train

    phys, path = work / "phys", work / "path"

    def spec(species, states, probability, height, width, subjects) -> DatasetSpec:
        return DatasetSpec(
            recipe.domain,
            species,
            states,
            subjects,
            recipe.images,
            recipe.sensor,
            height,
            width,
            probability,
            seed=recipe.seed + 11,
        )

    full = (recipe.height, recipe.width)
    if recipe.domain == "surgical":
        specs = {
            phys: spec(recipe.train_species, ("physiological",), 0.0, *full, recipe.subjects),
            path: spec(recipe.train_species, None, 1.0, *full, recipe.subjects),
        }
        small = (recipe.projection_height, recipe.projection_width, recipe.projection_subjects)
        source_phys, source_path = work / "source-phys", work / "source-path"
        specs[source_phys] = spec(recipe.projection_species, ("physiological",), 0.0, *small)
        specs[source_path] = spec(recipe.projection_species, None, 1.0, *small)
    else:
        specs = {phys: spec(recipe.train_species, None, 0.5, *full, recipe.subjects)}
    for folder, folder_spec in specs.items():
        if not (folder / "index.json").is_file():
            log(f"{recipe.name}: simulating {folder.name} ({folder_spec.height}x{folder_spec.width})")
            write_dataset(folder, folder_spec)
    dataset = SpectralDataset.open(phys)
    split = split_by_subject(
        [r for r in dataset.records if r.species in recipe.train_species],
        val_fraction=0.15,
        test_fraction=0.25,
        seed=recipe.seed,
    )
    test_subjects = {r.subject_key for r in split.test}
    projections = ()
    if recipe.projection_species:
        projections = tuple(
            str(
                learn_projection_file(
                    [work / "source-phys", work / "source-path"],
                    sp,
                    SURGICAL_PATHOLOGICAL,
                    "physiological",
                    100,
                    work / f"proj-{sp}.npz",
                    log,
                )
            )
            for sp in recipe.projection_species
        )
    model_name, options, steps = MODEL, recipe.model_options, recipe.steps
    if reference:
        model_name, steps = REFERENCE_MODEL, recipe.reference_steps
        options = {"pool": recipe.model_options["pool"]} if recipe.model_options.get("pool", 1) > 1 else {}
    config = TrainConfig(
        data=str(phys),
        model=model_name,
        model_options=options,
        image_ids=tuple(sorted(r.image_id for r in split.train + split.val)),
        projections=projections,
        steps=steps,
        batch_size=recipe.batch_size,
        crop=recipe.crop,
        seed=recipe.seed,
        checkpoint_every=250,
        cache_dir=str(work / "cache"),
    )
    log(f"{recipe.name}: training {model_name} {options} for {steps} steps")
    checkpoint = train(
        config, work / ("reference-checkpoint" if reference else "checkpoint"), progress=_progress(recipe.name, log)
    )
    model, _ = load_model(checkpoint)
    evaluations = {"held_out_subjects": sorted("/".join(k) for k in test_subjects)}
    test_phys = [dataset.index_of(r.image_id) for r in split.test]
    evaluations["test"] = evaluate_model(model, dataset, test_phys).to_json()
    if recipe.domain == "surgical":
        pathological = SpectralDataset.open(path)
        test_path = [
            i for i, r in enumerate(pathological.records) if r.species == "human" and r.subject_key in test_subjects
        ]
        evaluations["test_pathological"] = evaluate_model(model, pathological, test_path).to_json()
    for result in evaluations.values():
        if isinstance(result, dict):
            result.pop("rows", None)
    out.mkdir(parents=True, exist_ok=True)
    if reference:
        evaluations["model"] = {"name": model_name, "options": options, "steps": steps}
        (out / "reference_evaluation.json").write_text(json.dumps(evaluations, indent=2))
        return evaluations
    shutil.copy2(checkpoint / "config.json", out / "config.json")
    shutil.copy2(checkpoint / "model.pt", out / "model.pt")
    (out / "evaluation.json").write_text(json.dumps(evaluations, indent=2))
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", default="all", choices=[*RECIPES, "all"])
    parser.add_argument("--work", type=Path, default=Path("experiments/default-models"))
    parser.add_argument(
        "--reference",
        action="store_true",
        help="train and evaluate the paper's reference network on the same data instead (docs/models.md)",
    )
    args = parser.parse_args()
    names = list(RECIPES) if args.name == "all" else [args.name]
    for name in names:
        target = Path(__file__).resolve().parent / "default_models" / name
        result = build(RECIPES[name], args.work / name, target, reference=args.reference)
        summary = {k: round(v["mean_dsc"], 3) for k, v in result.items() if isinstance(v, dict) and "mean_dsc" in v}
        print(f"{name}: {target} mean DSC {summary}")


if __name__ == "__main__":
    main()
