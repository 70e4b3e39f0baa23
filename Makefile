# Two set-up commands on a fresh machine: `make demo` (main job) and `make test`.
# Each creates .venv and installs what it needs. torch is installed pinned first:
# an unpinned torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT ?= demo-output

.PHONY: demo test lint bench experiment default-models default-bundles clean

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
	$(VENV)/bin/xenoedge demo --frames 40 --out $(DEMO_OUT)/demo
	$(VENV)/bin/xenoedge camera-preview --out $(DEMO_OUT)/camera --frames 10
	$(VENV)/bin/xenoedge simulate --out $(DEMO_OUT)/surgical --domain surgical --subjects 1 --images 2 --size 240x320 --seed 1
	$(VENV)/bin/xenoedge simulate --out $(DEMO_OUT)/crop --domain crop --sensor mosaic-5x5-nir --subjects 1 --images 2 --seed 1
	@echo "Look at $(DEMO_OUT)/demo/*.png (masks received over a serial pty), $(DEMO_OUT)/camera/*.png,"
	@echo "$(DEMO_OUT)/*/preview/*.png and $(DEMO_OUT)/*/median_spectra.png"

# One OpenBLAS thread: NumPy's matrix products here are small, and OpenBLAS's own thread pool
# was seen to spin forever (a test run hung in a 100x551 @ 551x100 product) once torch,
# ONNX Runtime and OpenVINO thread pools shared the process.
test: $(VENV)/.dev-installed
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(VENV)/.demo-installed
	$(PY) benchmarks/simulator_fps.py
	$(PY) benchmarks/calibration_speed.py
	$(VENV)/bin/edge-bench surgical --backend all -t 15 --warmup 10 --json bench-surgical.json --csv bench-surgical.csv
	$(VENV)/bin/edge-bench crop --backend all -t 15 --warmup 10 --json bench-crop.json --csv bench-crop.csv

# Reproduce the documented experiment (docs/experiments/xeno.md) and the shipped default models.
experiment: $(VENV)/.dev-installed
	$(VENV)/bin/xenoedge experiment xeno --preset quick --work experiments/xeno --report docs/experiments/xeno.md

default-models: $(VENV)/.dev-installed
	$(PY) -m xeno.default_models all --work experiments/default-models

# Export the default models into the bundles the device install ships (edge/default_bundles).
default-bundles: $(VENV)/.dev-installed
	$(PY) -m export.default_bundles --work experiments/default-bundles

clean:
	rm -rf $(VENV) $(DEMO_OUT)
