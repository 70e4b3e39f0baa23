"""The default models shipped inside the package, and the recipe that reproduces each.

    python -m xeno.default_models [surgical|crop|all] [--work DIR]      (or: make default-models)

Both are ``pixel-mlp`` networks (11 k parameters): on simulated human data they reach the same
held-out DSC as ``unet-small`` in a third of the training time and run ~2x faster on a CPU
(docs/models.md).

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
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from calibration.errors import UnknownNameError

MODEL = "pixel-mlp"  # per-pixel: fastest on the device at the same held-out DSC as unet-small here
MODEL_OPTIONS: dict = {}


@dataclass(frozen=True)
class Recipe:
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
    seed: int = 0


RECIPES = {
    "surgical": Recipe("surgical", "surgical", "tivita", ("human",), ("pig", "rat"), 96, 128, 8, 3, 800),
    "crop": Recipe("crop", "crop", "mosaic-5x5-nir", ("wheat", "maize", "tomato"), (), 96, 128, 6, 3, 800),
}


def default_model_dir(name: str) -> Path:
    """Folder of a shipped default model (``config.json``, ``model.pt``, ``evaluation.json``)."""
    if name not in RECIPES:
        raise UnknownNameError("default model", name, sorted(RECIPES))
    return Path(str(resources.files("xeno").joinpath("default_models", name)))


def build(recipe: Recipe, work: Path, out: Path, log=print) -> dict:
    """Simulate, learn projections, train and evaluate ``recipe``; write the model to ``out``."""
    from xeno.checkpoint import load_model
    from xeno.dataset import SpectralDataset, split_by_subject
    from xeno.evaluate import evaluate_model
    from xeno.experiment import SURGICAL_PATHOLOGICAL, learn_projection_file
    from xeno.simulate_dataset import DatasetSpec, write_dataset
    from xeno.train import TrainConfig, train

    species = tuple(dict.fromkeys(recipe.train_species + recipe.projection_species))
    phys, path = work / "phys", work / "path"
    if recipe.domain == "surgical":
        specs = {
            phys: DatasetSpec(
                "surgical",
                species,
                ("physiological",),
                recipe.subjects,
                recipe.images,
                recipe.sensor,
                recipe.height,
                recipe.width,
                0.0,
                seed=recipe.seed + 11,
            ),
            path: DatasetSpec(
                "surgical",
                species,
                None,
                recipe.subjects,
                recipe.images,
                recipe.sensor,
                recipe.height,
                recipe.width,
                1.0,
                seed=recipe.seed + 11,
            ),
        }
    else:
        specs = {
            phys: DatasetSpec(
                "crop",
                species,
                None,
                recipe.subjects,
                recipe.images,
                recipe.sensor,
                recipe.height,
                recipe.width,
                0.5,
                seed=recipe.seed + 11,
            ),
        }
    for folder, spec in specs.items():
        if not (folder / "index.json").is_file():
            log(f"{recipe.name}: simulating {folder.name}")
            write_dataset(folder, spec)
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
                    [phys, path], sp, SURGICAL_PATHOLOGICAL, "physiological", 100, work / f"proj-{sp}.npz", log
                )
            )
            for sp in recipe.projection_species
        )
    config = TrainConfig(
        data=str(phys),
        model=MODEL,
        model_options=MODEL_OPTIONS,
        image_ids=tuple(sorted(r.image_id for r in split.train + split.val)),
        projections=projections,
        steps=recipe.steps,
        batch_size=8,
        crop=64,
        seed=recipe.seed,
        checkpoint_every=recipe.steps,
    )
    log(f"{recipe.name}: training {recipe.steps} steps")
    checkpoint = train(config, work / "checkpoint", progress=None)
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
    shutil.copy2(checkpoint / "config.json", out / "config.json")
    shutil.copy2(checkpoint / "model.pt", out / "model.pt")
    (out / "evaluation.json").write_text(json.dumps(evaluations, indent=2))
    return evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", default="all", choices=[*RECIPES, "all"])
    parser.add_argument("--work", type=Path, default=Path("experiments/default-models"))
    args = parser.parse_args()
    names = list(RECIPES) if args.name == "all" else [args.name]
    for name in names:
        target = Path(__file__).resolve().parent / "default_models" / name
        result = build(RECIPES[name], args.work / name, target)
        summary = {k: round(v["mean_dsc"], 3) for k, v in result.items() if isinstance(v, dict)}
        print(f"{name}: {target} mean DSC {summary}")


if __name__ == "__main__":
    main()
