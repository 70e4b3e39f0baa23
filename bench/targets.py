"""Every target of one bundle, side by side, through the daemon's own engine code and defaults.

    python -m xenoedge.bench.targets BUNDLE [--rounds 7] [--runs 3] [--threads N] [--json OUT]

Each target is opened with ``xenoedge.edge.engines.open_engine`` (``prefer=[target]``, default
``EngineOptions``: the OpenVINO precision hint ``"auto"``, no confidence, the runtime's default
threads), its references bound from the self-test and its input the self-test frame tiled to
the full frame. After a warm-up, the targets run in alternating rounds (round r runs every
target ``runs`` times before round r + 1), so a background load hits all of them alike; the
report gives the median, mean, min and max latency per target, its effective precision and
device. ``xenoedge.export.default_bundles`` runs this in a fresh process (no torch/NNCF thread pools) to
decide which precision each runtime ships.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from xenoedge.edge.engines import EngineOptions, open_engine
from xenoedge.edge.target_timing import feed_selftest
from xenoedge.export.bundle import extract_bundle, load_selftest, read_manifest


def measure_targets(
    bundle: Path, *, rounds: int = 7, runs: int = 3, warmup: int = 3, threads: int | None = None
) -> dict[str, dict]:
    """{target: {median_ms, mean_ms, min_ms, max_ms, n, effective_precision, device, runtime, precision}}."""
    work = Path(tempfile.mkdtemp(prefix="xenoedge-bench-targets-"))
    try:
        folder = extract_bundle(bundle, work / "bundle")
        manifest = read_manifest(folder)
        selftest = load_selftest(folder, manifest)
        options = EngineOptions(threads=threads)
        engines = {}
        for name in sorted(manifest["targets"]):
            engine = open_engine(folder, manifest, prefer=[name], options=options)
            if engine.target != name:  # not runnable here: open_engine fell back to another target
                engine.close()
                continue
            feed_selftest(engine, selftest)
            engine.warm_up(warmup)
            engines[name] = engine
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(rounds):
            for name, engine in engines.items():
                for _ in range(runs):
                    t0 = time.perf_counter()
                    engine.infer()
                    times[name].append((time.perf_counter() - t0) * 1e3)
        out = {}
        for name, engine in engines.items():
            spec = manifest["targets"][name]
            values = times[name]
            out[name] = {
                "runtime": spec["runtime"],
                "precision": spec["precision"],
                "effective_precision": engine.effective_precision,
                "device": engine.device,
                "median_ms": round(statistics.median(values), 3),
                "mean_ms": round(float(np.mean(values)), 3),
                "min_ms": round(min(values), 3),
                "max_ms": round(max(values), 3),
                "n": len(values),
            }
            engine.close()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = measure_targets(args.bundle, rounds=args.rounds, runs=args.runs, warmup=args.warmup, threads=args.threads)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
