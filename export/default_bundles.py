"""Build the bundles the device install ships: the default models, gated, at the precision that pays.

    python -m xenoedge.export.default_bundles [surgical|crop|all] [--work DIR] [--out DIR]   (or: make default-bundles)

For each default model (``BUNDLE_RECIPES``):

1. simulate a **calibration** set and a disjoint **validation** set of the model's sensor at its
   full frame size (other seeds than each other and than the training data, so other subjects);
   the validation set must hold every class of the label set (checked here, and the gate fails
   a class without validation support);
2. export the ``cpu`` target at FP32, FP16 and INT8 (ONNX Runtime FP32/INT8, OpenVINO
   FP32/FP16/INT8; INT8 with 7-bit weights and the first layer in float), every artifact gated
   at 1 DSC point per class against FP32 PyTorch, run with the device engines' own settings;
3. measure every gated target side by side with the daemon's engine code
   (``python -m xenoedge.bench.targets``, in a fresh process, alternating rounds, median latency);
4. keep, per runtime, the fastest precision, a lower precision only when its median is at least
   ``MIN_GAIN`` faster than the best higher one; rank the kept targets by latency (``rank`` in
   the manifest, which ``open_engine`` honours) and record the measurement and the decision in
   ``provenance.precision_decision``;
5. write ``edge/default_bundles/<name>.xeb`` with ``provenance.recipe``: the recipe settings,
   the SHA-256 of the default model's files and a fingerprint of both.
   ``tests/export/test_default_bundles.py`` recomputes the fingerprint from the code and fails
   when a packaged bundle no longer matches (rebuild with ``make default-bundles``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from xenoedge.export.bundle.archive import file_sha256
from xenoedge.xeno.default_models import RECIPES, default_model_dir

OUT_DIR = Path(__file__).resolve().parents[1] / "edge" / "default_bundles"
#: Bump when ``build`` changes in a way that changes the bundles but not the settings below.
RECIPE_VERSION = 4  # 4: the block arg-max (xenoedge.export.block_argmax)
#: A lower precision ships only when its median latency is at least this much below the best higher one's.
MIN_GAIN = 0.05
_PRECISION_ORDER = ("fp32", "fp16", "int8")  # higher precision first


@dataclass(frozen=True)
class DataRecipe:
    """A simulated data set: ``subjects`` x ``images`` per species at the sensor's frame size."""

    species: tuple[str, ...]
    subjects: int
    images: int
    pathological_probability: float
    seed: int


@dataclass(frozen=True)
class BundleRecipe:
    """How one default bundle is made from its default model (every field is in the fingerprint)."""

    name: str
    calibration: DataRecipe
    validation: DataRecipe
    target: str = "cpu"
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    keep_float: tuple[str, ...] = ("first",)
    method: str = "minmax"
    int8_weight_bits: int = 7  # reduce_range (docs/export.md): the AVX2 saturation workaround
    max_drop: float = 0.01
    version: str = "1.0.0"
    bench_rounds: int = 7
    bench_runs: int = 3


BUNDLE_RECIPES = {
    # 12 validation images of 4 human subjects hold all 11 organs (checked by _check_support).
    "surgical": BundleRecipe(
        "surgical",
        calibration=DataRecipe(("human",), 2, 2, 0.5, seed=1717),
        validation=DataRecipe(("human",), 4, 3, 0.5, seed=4242),
    ),
    "crop": BundleRecipe(
        "crop",
        calibration=DataRecipe(("wheat", "maize", "tomato"), 1, 2, 0.5, seed=1717),
        validation=DataRecipe(("wheat", "maize", "tomato"), 2, 2, 0.5, seed=4242),
    ),
}


def recipe_record(name: str, model_dir: Path | None = None) -> dict:
    """What a default bundle's ``provenance.recipe`` holds, computed from the code and the model
    files without exporting anything: the settings, the model's file hashes and a fingerprint."""
    recipe = BUNDLE_RECIPES[name]
    folder = Path(model_dir) if model_dir else default_model_dir(name)
    settings = {
        "recipe_version": RECIPE_VERSION,
        "bundle": asdict(recipe),
        "model_recipe": asdict(RECIPES[name]),
        "min_gain": MIN_GAIN,
    }
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as the manifest stores them
    model = {f: file_sha256(folder / f) for f in ("config.json", "model.pt")}
    canonical = json.dumps({"settings": settings, "model": model}, sort_keys=True, separators=(",", ":"))
    return {
        "settings": settings,
        "model_sha256": model,
        "fingerprint": hashlib.sha256(canonical.encode()).hexdigest(),
        "command": "make default-bundles",
    }


def _simulate(folder: Path, name: str, data: DataRecipe, log) -> Path:
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

    from xenoedge.sensors import get_sensor

    model_recipe = RECIPES[name]
    h, w, _ = get_sensor(model_recipe.sensor).cube_shape
    spec = DatasetSpec(
        model_recipe.domain,
        data.species,
        None,
        data.subjects,
        data.images,
        model_recipe.sensor,
        h,
        w,
        data.pathological_probability,
        seed=data.seed,
    )
    stamp = folder / "recipe.json"
    wanted = json.dumps(asdict(spec), sort_keys=True, default=list)
    if not (folder / "index.json").is_file() or not stamp.is_file() or stamp.read_text() != wanted:
        shutil.rmtree(folder, ignore_errors=True)
        log(f"{name}: simulating {folder.name} ({data.subjects} subjects x {data.images} images, seed {data.seed})")
        write_dataset(folder, spec)
        stamp.write_text(wanted)
    return folder


def _check_support(folder: Path, label_names: list[str]) -> dict[str, int]:
    """Images per class in a data set; raises naming the classes no image holds."""
    import numpy as np
    from xenoedge.export.errors import ExportError
    from xenoedge.xeno.dataset import SpectralDataset

    dataset = SpectralDataset.open(folder)
    support = dict.fromkeys(label_names, 0)
    for i in range(len(dataset.records)):
        for label in np.unique(dataset.load(i).labels):
            support[label_names[int(label)]] += 1
    missing = [n for n in label_names[1:] if support[n] == 0]
    if missing:
        raise ExportError(f"{folder}: validation images hold no {', '.join(missing)}; enlarge the validation recipe")
    return support


def choose_targets(measured: dict[str, dict]) -> tuple[dict[str, int], dict[str, str]]:
    """(rank per kept target, reason per runtime) from the side-by-side measurement.

    Per runtime: start from the highest precision measured; a lower precision replaces it only
    when its median is at least ``MIN_GAIN`` below. Kept targets are ranked by median (0 = fastest).

    >>> m = {"a-ort-fp32": {"runtime": "ort", "precision": "fp32", "median_ms": 10.0},
    ...      "a-ort-int8": {"runtime": "ort", "precision": "int8", "median_ms": 9.8},
    ...      "a-ov-fp32": {"runtime": "ov", "precision": "fp32", "median_ms": 8.0},
    ...      "a-ov-int8": {"runtime": "ov", "precision": "int8", "median_ms": 5.0}}
    >>> choose_targets(m)[0]
    {'a-ov-int8': 0, 'a-ort-fp32': 1}
    """
    by_runtime: dict[str, list[str]] = {}
    for name, m in measured.items():
        by_runtime.setdefault(m["runtime"], []).append(name)
    kept, reasons = [], {}
    for runtime, names in by_runtime.items():
        names.sort(key=lambda n: _PRECISION_ORDER.index(measured[n]["precision"]))
        best = names[0]
        for name in names[1:]:
            if measured[name]["median_ms"] <= (1 - MIN_GAIN) * measured[best]["median_ms"]:
                best = name
        kept.append(best)
        others = ", ".join(f"{measured[n]['precision']} {measured[n]['median_ms']:.1f} ms" for n in names)
        reasons[runtime] = (
            f"{measured[best]['precision']} ({others}; a lower precision ships only when >= "
            f"{100 * MIN_GAIN:.0f}% faster at the same gate)"
        )
    kept.sort(key=lambda n: measured[n]["median_ms"])
    return {name: i for i, name in enumerate(kept)}, reasons


def _measure(candidate: Path, recipe: BundleRecipe, out_json: Path) -> dict[str, dict]:
    """Run ``xenoedge.bench.targets`` in a fresh process (export/ does not import edge/)."""
    command = [
        sys.executable,
        "-m",
        "xenoedge.bench.targets",
        str(candidate),
        "--rounds",
        str(recipe.bench_rounds),
        "--runs",
        str(recipe.bench_runs),
        "--json",
        str(out_json),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out_json.read_text())


def finalize(candidate: Path, out: Path, measured: dict[str, dict], command: str) -> dict:
    """Write ``out`` from the candidate bundle with only the chosen targets, ranked, and the
    measurement and decision in ``provenance.precision_decision``; returns the decision."""
    from xenoedge.export.bundle import extract_bundle, read_manifest, write_bundle

    ranks, reasons = choose_targets(measured)
    with tempfile.TemporaryDirectory(prefix="xenoedge-finalize-") as tmp:
        folder = extract_bundle(candidate, Path(tmp) / "candidate")
        manifest = dict(read_manifest(folder))
        files, not_shipped = {}, {}
        for name in list(manifest["targets"]):
            spec = manifest["targets"][name]
            if name not in ranks:
                del manifest["targets"][name]
                accuracy = manifest["accuracy"].pop(name, {})
                not_shipped[name] = {k: accuracy.get(k) for k in ("pixel_agreement", "max_class_drop", "passed")}
                continue
            spec["rank"] = ranks[name]
            for entry in spec.pop("files"):
                files[entry["path"]] = folder.joinpath(*entry["path"].split("/"))
        for entry in manifest["selftest"].pop("files"):
            files[entry["path"]] = folder.joinpath(*entry["path"].split("/"))
        decision = {
            "measured": measured,
            "shipped": sorted(ranks, key=ranks.get),
            "gated_not_shipped": not_shipped,
            "reasons": reasons,
            "rule": f"per runtime the fastest gated precision; lower precision only when >= {100 * MIN_GAIN:.0f}% "
            "faster (median); rank = latency order across runtimes",
            "command": command,
        }
        manifest["provenance"]["precision_decision"] = decision
        manifest["description"] = manifest.get("description", "") + " (" + ", ".join(decision["shipped"]) + ")"
        for key in ("created_at", "signature"):
            manifest.pop(key, None)
        write_bundle(out, manifest, files)
    return decision


def build(name: str, work: Path, out_dir: Path = OUT_DIR, log=print) -> Path:
    """Steps 1-5 of the module doc for default model ``name``; returns the bundle path."""
    import json as _json

    from xenoedge.export.export import export_checkpoint

    recipe = BUNDLE_RECIPES[name]
    work.mkdir(parents=True, exist_ok=True)
    calib = _simulate(work / f"{name}-calib", name, recipe.calibration, log)
    val = _simulate(work / f"{name}-val", name, recipe.validation, log)
    config = _json.loads((default_model_dir(name) / "config.json").read_text())
    support = _check_support(val, [label["name"] for label in config["labels"]])
    log(f"{name}: validation support (images per class) {support}")
    candidate = work / f"{name}.candidate.xeb"
    record = recipe_record(name)
    report = export_checkpoint(
        default_model_dir(name),
        target=recipe.target,
        precision=recipe.precisions,
        out=candidate,
        calib=calib,
        val=val,
        calib_frames=10**6,
        val_frames=10**6,
        method=recipe.method,
        keep_float=recipe.keep_float,
        max_drop=recipe.max_drop,
        name=name,
        version=recipe.version,
        provenance={
            "recipe": record,
            "data_sets": {
                "calibration": asdict(recipe.calibration),
                "validation": asdict(recipe.validation),
                "validation_support_images": support,
            },
        },
        drop_failing=True,
        log=log,
    )
    for target, reason in report.dropped.items():
        log(f"{name}: {target} failed the gate and is not shipped: {reason.splitlines()[0]}")
    measured = _measure(candidate, recipe, work / f"{name}.targets.json")
    for target, m in sorted(measured.items(), key=lambda kv: kv[1]["median_ms"]):
        log(f"{name}: {target} median {m['median_ms']:.1f} ms ({m['effective_precision']})")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.xeb"
    decision = finalize(candidate, out, measured, f"python -m xenoedge.export.default_bundles {name}")
    log(f"{name}: {out} ships {', '.join(decision['shipped'])}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", default="all", choices=[*BUNDLE_RECIPES, "all"])
    parser.add_argument("--work", type=Path, default=Path("experiments/default-bundles"))
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the .xeb files go (default: the package's)")
    args = parser.parse_args()
    logging.getLogger("nncf").setLevel(logging.WARNING)
    for name in BUNDLE_RECIPES if args.name == "all" else [args.name]:
        build(name, args.work, args.out)


if __name__ == "__main__":
    main()
