"""What the ``confidence`` output costs, and whether each runtime skips it when not asked for.

    OPENBLAS_NUM_THREADS=1 python benchmarks/confidence_cost.py [--rounds 7] [--threads 2]

Exports an (untrained) ``unet-edge`` (pool 4) at 480x640x100 raw uint16 in, then times, in
alternating rounds (medians):

- ONNX Runtime, the same session fetching ``classes`` + ``confidence`` vs ``classes`` only,
  and whether a Softmax node still runs in the profile when only ``classes`` is fetched;
- OpenVINO, the compiled model with both outputs vs the model with the ``confidence`` result
  dropped before compiling (``openvino_without_outputs``: what ``xenoedge.edge.engines`` does when no
  consumer asks for confidence).

Prints one JSON object. docs/export.md ("Confidence") quotes a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="inferences per round and variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--size", default="480x640x100")
    parser.add_argument("--classes", type=int, default=13)
    args = parser.parse_args()
    import onnxruntime as ort
    import openvino as ov
    import torch
    from xenoedge.export.bundle.runtime import openvino_without_outputs
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.xeno.models import build_model

    h, w, c = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    model = build_model("unet-edge", c, args.classes, pool=args.pool).eval()
    work = Path(tempfile.mkdtemp(prefix="confidence-cost-"))
    path = export_onnx(model, height=h, width=w, n_bands=c, path=work / "m.onnx")
    rng = np.random.default_rng(0)
    ph, pw = h // args.pool, w // args.pool
    inputs = {
        "raw": rng.integers(100, 900, size=(1, h, w, c), dtype=np.uint16),
        "dark": np.full((ph, pw, c), 64.0, np.float32),
        "gain": np.full((ph, pw, c), 1 / 800, np.float32),
    }
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": str(args.threads), "INFERENCE_PRECISION_HINT": "f32"}
    full = core.read_model(str(path))
    both_ov = core.compile_model(full, "CPU", cfg)
    pruned = core.read_model(str(path))
    classes_ov = core.compile_model(openvino_without_outputs(pruned, ("confidence",)), "CPU", cfg)
    variants = {
        "ort classes+confidence": lambda: session.run(["classes", "confidence"], inputs),
        "ort classes only": lambda: session.run(["classes"], inputs),
        "openvino classes+confidence": lambda: both_ov(inputs),
        "openvino classes only (pruned)": lambda: classes_ov(inputs),
    }
    for run in variants.values():  # warm-up
        run()
        run()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            for _ in range(args.runs):
                t0 = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - t0) * 1e3)
    so_prof = ort.SessionOptions()
    so_prof.intra_op_num_threads, so_prof.inter_op_num_threads = args.threads, 1
    so_prof.enable_profiling = True
    so_prof.profile_file_prefix = str(work / "prof")
    prof = ort.InferenceSession(str(path), so_prof, providers=["CPUExecutionProvider"])
    prof.run(["classes"], inputs)
    events = json.loads(Path(prof.end_profiling()).read_text())
    ops = sorted(
        {e["args"].get("op_name") for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
    )
    ov_ops = sorted({op.get_type_name() for op in classes_ov.get_runtime_model().get_ops()})
    print(
        json.dumps(
            {
                "size": args.size,
                "pool": args.pool,
                "threads": args.threads,
                "median_ms": {k: round(statistics.median(v), 2) for k, v in times.items()},
                "n": {k: len(v) for k, v in times.items()},
                "ort_ops_run_fetching_classes_only": ops,
                "ort_softmax_runs_when_only_classes_fetched": "Softmax" in ops,
                "openvino_pruned_runtime_has_softmax": any("oftmax" in o for o in ov_ops),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
