"""Write the paper's reference network as a checkpoint edge-bench can time: speed only, weights untrained.

    python benchmarks/reference_checkpoint.py OUT [--pool 1]

``unet-effb5`` (30 M parameters) with the surgical default's labels, wavelengths and
preprocessing, so ``edge-bench OUT`` measures it as the paper runs it (full 480 x 640 frame,
``--pool 1``) in PyTorch eager FP32 and as FP32 ONNX Runtime / OpenVINO graphs, the numbers the
edge-first default is compared with in docs/bench.md. Latency does not depend on the weights; a
trained reference (``python -m xenoedge.xeno.default_models surgical --reference``) is ~120 MB and stays
out of the repository.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from xenoedge.xeno.checkpoint import save_checkpoint
from xenoedge.xeno.default_models import default_model_dir
from xenoedge.xeno.models import build_model, model_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pool", type=int, default=1, help="frame pooling of the reference (1: as in the paper)")
    args = parser.parse_args()
    source = json.loads((default_model_dir("surgical") / "config.json").read_text())
    torch.manual_seed(0)
    model = build_model("unet-effb5", len(source["wavelengths_nm"]), len(source["labels"]), pool=args.pool).eval()
    keep = ("labels", "label_set", "states", "wavelengths_nm", "sensor", "preprocessing")
    config = {k: source[k] for k in keep if k in source} | {"model": model_config(model), "train": {}}
    save_checkpoint(args.out, model=model, optimizer=None, config=config, state={"step": 0}, rng_state=torch.zeros(1))
    print(f"{args.out}: untrained {config['model']['name']} {config['model']['options']}")


if __name__ == "__main__":
    main()
