# Two set-up commands on a fresh machine: `make demo` (main job) and `make test`.
# Each creates .venv and installs what it needs. torch is installed pinned first:
# an unpinned torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT ?= demo-output

.PHONY: demo test test-debs lint bench bench-edge bench-defaults experiment default-models default-bundles clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Device install plus the simulator's extras: what the demo needs, no torch/onnx/nncf.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[sim]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/xenoedge demo --frames 120 --out $(DEMO_OUT)/demo
	$(VENV)/bin/xenoedge camera-preview --out $(DEMO_OUT)/camera --frames 10
	$(VENV)/bin/xenoedge simulate --out $(DEMO_OUT)/surgical --domain surgical --subjects 1 --images 2 --size 240x320 --seed 1
	$(VENV)/bin/xenoedge simulate --out $(DEMO_OUT)/crop --domain crop --sensor mosaic-5x5-nir --subjects 1 --images 2 --seed 1
	@echo "Look at $(DEMO_OUT)/demo/*.png (masks received over a serial pty), $(DEMO_OUT)/camera/*.png,"
	@echo "$(DEMO_OUT)/*/preview/*.png and $(DEMO_OUT)/*/median_spectra.png"

# One OpenBLAS thread: NumPy's matrix products here are small, and OpenBLAS's own thread pool
# was seen to spin forever (a test run hung in a 100x551 @ 551x100 product) once torch,
# ONNX Runtime and OpenVINO thread pools shared the process.
test: $(VENV)/.dev-installed test-debs
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

# Debian packages some tests run for real: the Mender client and artifact tool (tests/edge/test_mender.py,
# docs/fleet.md). Installed when missing and allowed (root, or sudo without a password); otherwise
# those tests skip and name the missing program. Idempotent: nothing happens once they are there.
TEST_DEBS := mender:mender-client mender-artifact:mender-artifact
test-debs:
	@missing=""; for pair in $(TEST_DEBS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then as=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as="sudo -n"; \
	else echo "test-debs:$$missing not installed (needs root or sudo; the tests that run them will skip)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "test-debs: no apt-get here; install$$missing by hand or those tests skip"; exit 0; fi; \
	echo "test-debs: installing$$missing"; \
	$$as env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null \
	  || { $$as apt-get update -q >/dev/null && $$as env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; } \
	  || echo "test-debs: apt-get could not install$$missing; the tests that run them will skip"

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Benchmarks on this machine's CPU. The dev install: edge-bench's PyTorch FP32 baseline needs torch.
# `make bench-edge VENV=/path/to/venv` reruns only the edge-bench part with an existing environment.
BENCH_OUT ?= benchmarks/results
BENCH_DATA ?= $(DEMO_OUT)/bench-data
EDGE_BENCH = OPENBLAS_NUM_THREADS=1 $(PY) -m xenoedge.bench.main

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/simulator_fps.py
	$(PY) benchmarks/calibration_speed.py
	$(MAKE) bench-edge VENV=$(VENV)

# The results in docs/bench.md (a few minutes): compare mode with ratios to PyTorch eager FP32 and DSC on a
# small simulated data set per bundle, the checkpoint's FP32 graphs, the offline scenario, the daemon pipeline,
# the previous (pixel-mlp) surgical bundle against its checkpoint, a --profile run, OpenVINO first and cached start.
bench-edge:
	mkdir -p $(BENCH_OUT)
	test -f $(BENCH_DATA)/crop/index.json || $(VENV)/bin/xenoedge simulate --out $(BENCH_DATA)/crop --domain crop --sensor mosaic-5x5-nir --subjects 1 --images 2 --seed 7
	test -f $(BENCH_DATA)/surgical/index.json || $(VENV)/bin/xenoedge simulate --out $(BENCH_DATA)/surgical --domain surgical --subjects 1 --images 2 --size 240x320 --seed 7
	$(EDGE_BENCH) crop -t 10 --warmup 5 --rss-alone --dataset $(BENCH_DATA)/crop --json $(BENCH_OUT)/crop.json --csv $(BENCH_OUT)/crop.csv --plot $(BENCH_OUT)/crop.png
	$(EDGE_BENCH) surgical -niter 10 -t 10 --rounds 5 --warmup 2 --rss-alone --dataset $(BENCH_DATA)/surgical --json $(BENCH_OUT)/surgical.json --csv $(BENCH_OUT)/surgical.csv --plot $(BENCH_OUT)/surgical.png
	$(EDGE_BENCH) xeno/default_models/crop -t 5 --warmup 5 --json $(BENCH_OUT)/crop-checkpoint.json --csv $(BENCH_OUT)/crop-checkpoint.csv
	$(EDGE_BENCH) crop --backend ort,openvino -hint throughput -nireq 2 -t 5 --warmup 5 --json $(BENCH_OUT)/crop-offline.json --csv $(BENCH_OUT)/crop-offline.csv
	$(EDGE_BENCH) crop --mode pipeline --link pty --baud 921600 -t 8 --warmup 5 --json $(BENCH_OUT)/crop-pipeline.json --csv $(BENCH_OUT)/crop-pipeline.csv
	$(EDGE_BENCH) $(BASELINES)/surgical.xeb --checkpoint $(BASELINES)/models/surgical -niter 6 --rounds 3 --warmup 1 --dataset $(BENCH_DATA)/surgical --json $(BENCH_OUT)/surgical-pixel-mlp.json --csv $(BENCH_OUT)/surgical-pixel-mlp.csv
	$(EDGE_BENCH) surgical --backend ort,openvino -niter 5 --warmup 2 --rounds 1 --profile --json $(BENCH_OUT)/surgical-profile.json
	rm -rf $(BENCH_DATA)/ov-cache
	$(EDGE_BENCH) surgical --backend openvino -niter 3 --warmup 1 --rounds 1 --cache-dir $(BENCH_DATA)/ov-cache --json $(BENCH_OUT)/surgical-cache-first.json
	$(EDGE_BENCH) surgical --backend openvino -niter 3 --warmup 1 --rounds 1 --cache-dir $(BENCH_DATA)/ov-cache --json $(BENCH_OUT)/surgical-cache-second.json
	$(MAKE) bench-defaults VENV=$(VENV)

# The shipped edge-first defaults against what they replaced (benchmarks/baselines) and the paper's
# reference network, side by side (docs/bench.md, "Edge-first defaults").
# unet-edge-dense-post-2026-12-08: the same models before the block arg-max (docs/export_onnx.md);
# unet-edge-nchw-2026-12-07, kept: before ONNX Runtime targets got channels-last post-processing.
BASELINES = benchmarks/baselines/pixel-mlp-2026-11
PREVIOUS = benchmarks/baselines/unet-edge-dense-post-2026-12-08
bench-defaults:
	mkdir -p $(BENCH_OUT)
	$(EDGE_BENCH) surgical --backend ort,openvino --compare $(BASELINES)/surgical.xeb,$(PREVIOUS)/surgical.xeb -t 10 --rounds 5 --warmup 5 --json $(BENCH_OUT)/surgical-vs-pixel-mlp.json --csv $(BENCH_OUT)/surgical-vs-pixel-mlp.csv
	$(EDGE_BENCH) crop --backend ort,openvino --compare $(BASELINES)/crop.xeb,$(PREVIOUS)/crop.xeb -t 10 --rounds 5 --warmup 5 --json $(BENCH_OUT)/crop-vs-pixel-mlp.json --csv $(BENCH_OUT)/crop-vs-pixel-mlp.csv
	test -f $(BENCH_DATA)/reference-effb5/model.pt || $(PY) benchmarks/reference_checkpoint.py $(BENCH_DATA)/reference-effb5
	$(EDGE_BENCH) $(BENCH_DATA)/reference-effb5 -niter 5 --rounds 5 --warmup 1 --json $(BENCH_OUT)/reference-effb5.json --csv $(BENCH_OUT)/reference-effb5.csv
	$(EDGE_BENCH) surgical --mode pipeline --link pty --baud 921600 -t 10 --warmup 5 --json $(BENCH_OUT)/surgical-pipeline.json --csv $(BENCH_OUT)/surgical-pipeline.csv
	$(EDGE_BENCH) surgical --mode pipeline --camera "sim:surgical?ring=3" --link pty --baud 921600 -t 10 --warmup 5 --json $(BENCH_OUT)/surgical-pipeline-ring.json --csv $(BENCH_OUT)/surgical-pipeline-ring.csv

# Reproduce the documented experiment (docs/experiments/xeno.md) and the shipped default models.
experiment: $(VENV)/.dev-installed
	$(VENV)/bin/xenoedge experiment xeno --preset quick --work experiments/xeno --report docs/experiments/xeno.md

default-models: $(VENV)/.dev-installed
	$(PY) -m xenoedge.xeno.default_models all --work experiments/default-models

# Export the default models into the bundles the device install ships (edge/default_bundles).
default-bundles: $(VENV)/.dev-installed
	$(PY) -m xenoedge.export.default_bundles --work experiments/default-bundles

clean:
	rm -rf $(VENV) $(DEMO_OUT)
