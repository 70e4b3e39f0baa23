"""Build the bundles the device install ships: the default models exported for ``cpu`` INT8.

    python -m export.default_bundles [--work DIR]          (or: make default-bundles)

Writes ``edge/default_bundles/{surgical,crop}.xeb`` at the full cube size of each model's
sensor, with ONNX Runtime and OpenVINO INT8 artifacts (first layer kept in float), gated at
1 DSC point against FP32 PyTorch on freshly simulated validation frames of that sensor. The
device needs neither torch nor the export tools to run them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from xeno.default_models import RECIPES, default_model_dir

OUT_DIR = Path(__file__).resolve().parents[1] / "edge" / "default_bundles"


def build(name: str, work: Path, log=print) -> Path:
    from calibration.sensors import get_sensor
    from export.export import export_checkpoint
    from xeno.simulate_dataset import DatasetSpec, write_dataset

    recipe = RECIPES[name]
    sensor = get_sensor(recipe.sensor)
    h, w, _ = sensor.cube_shape
    val = work / f"{name}-val"
    if not (val / "index.json").is_file():
        species = recipe.train_species[:1]
        write_dataset(
            val,
            DatasetSpec(recipe.domain, species, None, 2, 2, recipe.sensor, h, w, 0.3, seed=4242),
        )
    out = OUT_DIR / f"{name}.xeb"
    report = export_checkpoint(
        default_model_dir(name),
        target="cpu",
        precision="int8",
        out=out,
        calib=val,
        val=val,
        keep_float=("first",),
        max_drop=0.01,
        name=name,
        version="1.0.0",
        log=log,
    )
    agreements = ", ".join(f"{k} agreement {v['pixel_agreement']:.4f}" for k, v in report.artifacts.items())
    log(f"{name}: {out} {agreements}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("experiments/default-bundles"))
    args = parser.parse_args()
    logging.getLogger("nncf").setLevel(logging.WARNING)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in RECIPES:
        build(name, args.work)


if __name__ == "__main__":
    main()
