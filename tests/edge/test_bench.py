"""edge-bench on the packaged bundles, their model files and the crop checkpoint: real ORT / OpenVINO /
PyTorch sessions, compare mode with ratios, offline scenario, pipeline mode over real links, accuracy, errors."""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xenoedge.bench import measure
from xenoedge.bench.common import BenchError
from xenoedge.bench.configs import BenchSettings
from xenoedge.bench.main import SCHEMA_VERSION, main, run_bench
from xenoedge.bench.report import CSV_COLUMNS, write_plot
from xenoedge.edge.engines import ENGINES, EngineKind

pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[2]
CROP_CHECKPOINT = REPO / "xeno" / "default_models" / "crop"
#: The previous default crop bundle (pixel-mlp, ``cpu-onnxruntime-int8`` + ``cpu-openvino-int8``), kept for comparison.
BASELINE_CROP = REPO / "benchmarks" / "baselines" / "pixel-mlp-2026-11" / "crop.xeb"


def _bundle_targets(name: str) -> dict[str, dict]:
    """A packaged bundle's targets, in manifest order (edge-bench measures them in that order)."""
    from xenoedge.edge.builtin_bundles import default_bundle
    from xenoedge.export.bundle import read_manifest

    return read_manifest(default_bundle(name))["targets"]


# Which targets ship is decided by measurement (xenoedge.export.default_bundles): the tests read them from the manifest.
CROP_TARGETS = _bundle_targets("crop")
(CROP_ORT,) = [n for n, t in CROP_TARGETS.items() if t["runtime"] == "onnxruntime"]
(CROP_OV,) = [n for n, t in CROP_TARGETS.items() if t["runtime"] == "openvino"]


def _check_result(r: dict, niter: int) -> None:
    lat = r["latency_ms"]
    assert r["count"] >= niter
    assert r["duration_s"] > 0
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert r["open_ms"] >= r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["bind_ms"] >= 0
    assert r["cpu_util"] > 0
    assert r["peak_rss_mb"] is None or r["peak_rss_mb"] > 0


def _single_stream(r: dict) -> None:
    lat = r["latency_ms"]  # one request in flight: throughput <= 1 / min latency, close to 1 / mean
    assert 0 < r["throughput_fps"] <= 1e3 / lat["min"] * 1.01
    assert r["throughput_fps"] == pytest.approx(1e3 / lat["mean"], rel=0.5)


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory):
    """The crop bundle's ONNX file and OpenVINO IR, and the previous crop bundle's INT8 (QDQ) ONNX file,
    extracted and renamed (no precision in the name)."""
    from xenoedge.edge.builtin_bundles import default_bundle
    from xenoedge.export.bundle import extract_bundle

    tmp = tmp_path_factory.mktemp("crop-files")
    folder = extract_bundle(default_bundle("crop"), tmp / "bundle")
    onnx, xml = tmp / "model.onnx", tmp / "model.xml"
    shutil.copy(folder / CROP_TARGETS[CROP_ORT]["model"], onnx)
    ir = folder / CROP_TARGETS[CROP_OV]["model"]
    shutil.copy(ir, xml)
    shutil.copy(ir.with_suffix(".bin"), xml.with_suffix(".bin"))
    old = extract_bundle(BASELINE_CROP, tmp / "baseline")
    qdq = tmp / "qdq" / "model.onnx"
    qdq.parent.mkdir()
    shutil.copy(old / "models/cpu-onnxruntime-int8/model.int8.onnx", qdq)
    return onnx, xml, qdq


@pytest.fixture(scope="module")
def crop_dataset(tmp_path_factory):
    """Two labelled crop images (64x96, mosaic sensor) from the simulator."""
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

    out = tmp_path_factory.mktemp("crop-dataset")
    spec = DatasetSpec(domain="crop", species=("tomato",), subjects_per_species=1, images_per_subject=2,
                       sensor="mosaic-5x5-nir", height=64, width=96, seed=3)  # fmt: skip
    write_dataset(out, spec)
    return out


def test_engine_mode_writes_json_and_csv(tmp_path):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = main(["crop", "--backend", "ort", "-niter", "6", "--warmup", "1", "--percentile", "75", "--rss-alone",
               "--json", str(out_json), "--csv", str(out_csv)])  # fmt: skip
    assert rc == 0
    text = out_json.read_text()
    assert text.lstrip().startswith(f'{{\n  "schema_version": {SCHEMA_VERSION}')
    report = json.loads(text)
    (r,) = report["results"]
    assert r["target"] == CROP_ORT and r["runtime"] == "onnxruntime" and r["mode"] == "engine"
    assert r["scenario"] == "singlestream" and r["shape"] == "1x217x409x25" and report["model"]["kind"] == "bundle"
    _check_result(r, 6)
    _single_stream(r)
    assert r["latency_percentile"] == 75 and r["latency_ms"]["median"] <= r["latency_pct_ms"] <= r["latency_ms"]["max"]
    assert r["selftest_agreement"] == pytest.approx(1.0, abs=0.05)
    assert r["baseline"] is True and r["fps_ratio"] == 1.0 and report["baseline"] == CROP_ORT
    assert r["rss_growth_mb"] is None or r["rss_growth_mb"] >= 0
    # measured alone in a fresh process: a Python with NumPy, ONNX Runtime and the model loaded
    assert r["peak_rss_alone_mb"] is None or 50 < r["peak_rss_alone_mb"] < 4000
    assert sys.platform != "linux" or r["peak_rss_alone_mb"] is not None
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 1 and int(rows[0]["count"]) == 6
    assert math.isclose(float(rows[0]["latency_median_ms"]), r["latency_ms"]["median"])


def test_compare_mode_torch_baseline_alternating_with_accuracy_and_plot(monkeypatch, tmp_path, crop_dataset):
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    order = []
    real = measure._run_chunk
    monkeypatch.setattr(measure, "_run_chunk", lambda cfg, n, ns: (order.append(cfg.target), real(cfg, n, ns)))
    lat: dict = {}
    settings = BenchSettings("crop", backend="all", niter=3, warmup=1, rounds=3, dataset=str(crop_dataset),
                             dataset_frames=2)  # fmt: skip
    report = run_bench(settings, lat)
    names = [r["target"] for r in report["results"]]
    assert names == ["torch-fp32", *CROP_TARGETS]
    assert order == names * 3  # A, B, C, A, B, C, ...: drift hits all alike
    assert report["baseline"] == "torch-fp32" and report["notes"] == []
    by = {r["target"]: r for r in report["results"]}
    torch_r = by["torch-fp32"]
    assert torch_r["runtime"] == "torch" and torch_r["precision"] == "fp32" and torch_r["baseline"] is True
    # the eager baseline computes what the bundle was exported from: it passes the bundle's own self-test
    assert torch_r["selftest_agreement"] >= 0.95
    for r in report["results"]:
        _check_result(r, 3)
        _single_stream(r)
        assert r["fps_ratio"] == pytest.approx(r["throughput_fps"] / torch_r["throughput_fps"], rel=1e-3)
        assert r["latency_ratio"] == pytest.approx(r["latency_ms"]["median"] / torch_r["latency_ms"]["median"], 1e-3)
        assert 0.5 < r["dsc_truth"] <= 1.0  # the crop model on fresh simulated leaves
        assert r["agreement_reference"] > 0.9 and r["dsc_reference"] > 0.8  # each target close to torch FP32
    assert torch_r["dsc_reference"] == 1.0 and torch_r["agreement_reference"] == 1.0
    assert report["input"]["dataset"]["frames"] == 2
    out = tmp_path / "lat.png"
    assert write_plot(report, out, lat) is None
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_input_measures_torch_and_its_fp32_graphs_at_a_chosen_shape():
    pytest.importorskip("torch")
    pytest.importorskip("onnxslim")
    # the crop checkpoint is edge-first (its graph pools the frame 2 x 2): an odd -shape is padded in the graph,
    # and the graph's dark/gain inputs are bound at its working size
    report = run_bench(BenchSettings(str(CROP_CHECKPOINT), shape="33x47", niter=2, warmup=0, rounds=1))
    names = {r["target"]: r for r in report["results"]}
    assert set(names) >= {"torch-fp32", "onnxruntime-fp32"}
    assert report["baseline"] == "torch-fp32" and report["model"]["kind"] == "checkpoint"
    assert all(r["shape"] == "1x33x47x25" and r["precision"] == "fp32" for r in report["results"])
    assert report["input"]["source"].startswith("synthetic seeded frame")


def test_onnx_file_and_openvino_ir_inputs(crop_files):
    onnx, xml, qdq = crop_files
    # the bundle's graph pools the frame (dark/gain at the working size): edge-bench reads that from the graph
    report = run_bench(BenchSettings(str(onnx), backend="ort", niter=2, warmup=0))
    (r,) = report["results"]
    precision = CROP_TARGETS[CROP_ORT]["precision"]  # from the graph's nodes, not its name
    assert report["model"]["kind"] == "onnx" and r["target"] == f"onnxruntime-{precision}"
    assert r["shape"] == "1x217x409x25" and r["fps_ratio"] == 1.0
    report = run_bench(BenchSettings(str(qdq), backend="ort", niter=2, warmup=0))
    (r,) = report["results"]
    assert report["model"]["kind"] == "onnx" and r["target"] == "onnxruntime-int8"  # precision from the QDQ nodes
    assert r["shape"] == "1x217x409x25" and r["fps_ratio"] == 1.0
    pytest.importorskip("openvino")
    report = run_bench(BenchSettings(str(xml), niter=2, warmup=0))
    (r,) = report["results"]
    precision = CROP_TARGETS[CROP_OV]["precision"]  # from the IR's operations (FakeQuantize: int8)
    assert report["model"]["kind"] == "ir" and r["target"] == f"openvino-{precision}" and r["device"] == "CPU"
    assert "no PyTorch baseline: model has no checkpoint; give --checkpoint FOLDER" in report["notes"]


def test_offline_scenario_keeps_several_requests_in_flight():
    pytest.importorskip("openvino")
    report = run_bench(BenchSettings("crop", backend="ort,openvino", hint="throughput", nireq=2, niter=6, warmup=1,
                                     rounds=2))  # fmt: skip
    assert report["settings"]["scenario"] == "offline"
    for r in report["results"]:
        _check_result(r, 6)
        assert r["scenario"] == "offline" and r["nireq"] == 2
    ov = next(r for r in report["results"] if r["runtime"] == "openvino")
    assert ov["hint"] == "throughput" and ov["nstreams"] >= 1


def test_hint_latency_compiles_openvino_with_it_single_stream():
    pytest.importorskip("openvino")
    report = run_bench(BenchSettings("crop", backend="ort,openvino", hint="latency", niter=3, warmup=1, rounds=1))
    assert report["settings"]["scenario"] == "singlestream"
    ov = next(r for r in report["results"] if r["runtime"] == "openvino")
    assert (ov["nireq"], ov["hint"]) == (1, "latency") and ov["count"] >= 3
    _single_stream(ov)
    assert f"{CROP_ORT}: -hint/-nstreams are OpenVINO properties; not applied to onnxruntime" in report["notes"]


def test_torch_not_installed_is_skipped_with_a_note_never_a_crash():
    import importlib.util

    first_int8 = next(n for n, t in CROP_TARGETS.items() if t["precision"] == "int8")
    # an INT8-only run as well (no FP32 configuration) where the crop bundle's INT8 target's runtime is installed
    precisions = [None] + (["int8"] if importlib.util.find_spec(CROP_TARGETS[first_int8]["runtime"]) else [])
    code = (
        "import importlib.abc, json, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'onnx', 'nncf', 'onnxslim'}:\n"
        "            raise ImportError('no ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from xenoedge.bench.configs import BenchSettings\n"
        "from xenoedge.bench.main import run_bench\n"
        "import xenoedge.bench.inputs, xenoedge.bench.offline, xenoedge.bench.pipeline, xenoedge.bench.torch_baseline\n"
        f"for precision in {precisions!r}:\n"
        "    r = run_bench(BenchSettings('crop', backend='all', precision=precision, niter=2, warmup=0, rounds=1))\n"
        "    print(json.dumps([[x['target'] for x in r['results']], r['baseline'], r['notes']]))\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == len(precisions)
    (targets, baseline, notes), *int8_only = runs
    assert "torch-fp32" not in targets and targets == list(CROP_TARGETS)
    assert any(n.startswith("skipped torch-fp32: torch is not installed") for n in notes)
    # without torch the ratios go to an ONNX Runtime FP32 configuration, else to the first with a note
    (ort_fp32,) = [n for n, t in CROP_TARGETS.items() if (t["runtime"], t["precision"]) == ("onnxruntime", "fp32")]
    assert baseline == ort_fp32 and not any(n.startswith("no FP32 configuration") for n in notes)
    for targets, baseline, notes in int8_only:
        assert "torch-fp32" not in targets and baseline == first_int8
        assert f"no FP32 configuration in this run: ratios are to {first_int8}" in notes


def test_backend_not_installed_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setitem(ENGINES, "openvino", EngineKind("openvino", lambda spec, o: [], None, lambda: ()))
    report = run_bench(BenchSettings("crop", backend="ort,openvino", niter=2, warmup=0))
    assert [r["target"] for r in report["results"]] == [CROP_ORT]
    assert report["notes"][0] == f"skipped {CROP_OV}: openvino is not installed"
    with pytest.raises(BenchError, match=r"nothing to measure.*openvino is not installed"):
        run_bench(BenchSettings("crop", backend="openvino", niter=2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(backend="tflite"), r"unknown backend 'tflite'; available: ort, openvino, torch, all"),
        (dict(device="XPU"), rf"unknown device 'XPU'; available: devices CPU, GPU, NPU, AUTO.*{CROP_OV}"),
        (dict(device="tensorrt"), rf"crop@1\.0\.0 has no target for .*its targets: .*{CROP_ORT} \(onnxrunt"),
        (dict(precision="bf16"), r"unknown precision 'bf16'; available: fp32, fp16, int8"),
        (dict(precision="fp16", backend="ort"), r"no target for backend ort, precision fp16; its targets: .*int8\)"),
        (dict(mode="offline"), r"unknown mode 'offline'; available: engine, pipeline"),
        (dict(scenario="batch"), r"unknown scenario 'batch'; available: singlestream, offline"),
        (dict(hint="fast"), r"unknown -hint 'fast'; available: latency, throughput"),
        (dict(niter=0), r"-niter must be >= 1"),
        (dict(shape="100x100"), r"crop@1\.0\.0 does not accept -shape 100x100 .*it accepts 1x217x409x25 .* only"),
        (dict(shape="1x3x100x100"), r"-shape '1x3x100x100': give HxW, 1xHxWx25 \(NHWC\) or 1x25xHxW"),
        (dict(backend="ort", baseline="tensorrt"), rf"--baseline 'tensorrt' is not measured.*{CROP_ORT}"),
        (dict(mode="pipeline", scenario="offline"), r"--scenario offline is for --mode engine"),
        (dict(mode="pipeline", link="serial:/dev/x"), r"unknown --link 'serial:/dev/x'; available: null, file:PATH"),
        (dict(checkpoint="/nonexistent"), r"--checkpoint /nonexistent: not a checkpoint folder"),
    ],
)
def test_bad_input_lists_what_is_available(settings, message):
    settings.setdefault("niter", 1)
    with pytest.raises(BenchError, match=message):
        run_bench(BenchSettings("crop", warmup=0, **settings))


def test_bad_model_files(tmp_path):
    with pytest.raises(BenchError, match=r"not a bundle .* a checkpoint folder"):
        run_bench(BenchSettings(str(tmp_path)))
    with pytest.raises(BenchError, match=r"no such model file"):
        run_bench(BenchSettings(str(tmp_path / "missing.onnx")))
    with pytest.raises(BenchError, match=r"no such bundle file"):
        run_bench(BenchSettings(str(tmp_path / "missing.xeb")))


def test_device_gpu_without_gpu_is_skipped_not_run_on_cpu(monkeypatch):
    import onnxruntime

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        pytest.skip("this machine has a GPU provider")
    monkeypatch.setitem(ENGINES, "openvino", EngineKind("openvino", lambda spec, o: [], None, lambda: ("CPU",)))
    with pytest.raises(BenchError, match=r"nothing to measure") as err:
        run_bench(BenchSettings("crop", device="GPU", niter=2))
    assert f"{CROP_ORT}: -d GPU asked, onnxruntime has only CPUExecutionProvider here" in str(err.value)
    assert f"{CROP_OV}: openvino has no usable device here (has CPU)" in str(err.value)


def test_bad_input_exits_1_with_a_message(tmp_path, capsys):
    assert main([str(tmp_path / "missing.xeb")]) == 1
    assert main(["crop", "--backend", "tflite"]) == 1
    assert "edge-bench: unknown backend 'tflite'; available: ort, openvino, torch, all" in capsys.readouterr().err


def test_pipeline_mode_per_stage_over_a_paced_pty():
    pytest.importorskip("openvino")
    baud = 921_600
    report = run_bench(BenchSettings("crop", backend="openvino", mode="pipeline", niter=4, warmup=1, link="pty",
                                     baud=baud))  # fmt: skip
    (r,) = report["results"]
    assert r["mode"] == "pipeline" and r["engine"].startswith(f"{CROP_OV} on openvino")
    assert r["count"] == 4 and r["errors"] == {} and r["dropped"] >= 0
    assert r["throughput_fps"] > 0 and r["first_mask_ms"] >= r["start_ms"] >= r["load_ms"] > 0
    assert r["first_inference_ms"] is None and r["settings"]["runtime"] == "openvino" and r["model_bytes"] > 0
    stages = r["stages_ms"]
    assert set(stages) == {"capture", "calibrate", "infer", "encode", "link"}
    assert all(stages[k]["median"] > 0 and stages[k]["p95"] >= stages[k]["median"] for k in stages)
    # the daemon's per-mask latency covers calibration + inference + encoding + the link write
    assert r["latency_ms"]["median"] >= stages["infer"]["median"]
    # a MASK of a 217x409 crop frame: 88,753 class ids, compressed; the receiver decoded every one
    assert 100 < r["bytes_per_mask"] < 217 * 409
    assert r["masks_received"] == 5 and r["link_dropped_bytes"] == 0
    assert r["link_utilisation"] == pytest.approx(r["link_bytes_per_s"] / (baud / 10), rel=1e-3)
    # the same engine, bare, right after each round: the pipeline's rate beside the engine's
    assert r["engine_fps"] > 0
    assert r["pipeline_vs_engine"] == pytest.approx(r["throughput_fps"] / r["engine_fps"], rel=1e-2)


def test_pipeline_mode_file_link_writes_the_bytes_it_reports(tmp_path):
    from xenoedge.edge.protocol import StreamDecoder
    from xenoedge.edge.protocol.packets import PacketType

    out = tmp_path / "wire.bin"
    report = run_bench(BenchSettings("crop", backend="ort", mode="pipeline", niter=3, warmup=1, link=f"file:{out}"))
    (r,) = report["results"]
    packets = StreamDecoder().feed(out.read_bytes())
    masks = [p for p in packets if p.type == PacketType.MASK]
    assert len(masks) == 4  # warm-up mask + 3 timed, all on disk and decodable
    sizes = [len(p.payload) for p in masks[1:]]  # the timed ones: masks differ in size from frame to frame
    assert r["bytes_per_mask"] >= np.median(sizes) and r["link_utilisation"] is None  # no --baud: no utilisation


def test_plot_is_written_or_skipped_with_a_note(tmp_path):
    out = tmp_path / "lat.png"
    assert main(["crop", "--backend", "ort", "-niter", "3", "--warmup", "0", "--plot", str(out)]) == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not out.exists()
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pipeline_mode_on_a_replayed_camera(tmp_path):
    """``--camera replay:FOLDER`` with a references file: the daemon plays the files."""
    from xenoedge.calibration.capture import capture_reference
    from xenoedge.calibration.mosaic import cube_from_mosaic
    from xenoedge.calibration.references import References
    from xenoedge.calibration.store import save_references
    from xenoedge.devices.formats import write_cube
    from xenoedge.devices.simulated import SimulatedCamera

    from xenoedge.sensors import get_sensor

    sensor = get_sensor("mosaic-5x5-nir")
    folder = tmp_path / "scans"
    folder.mkdir()
    with SimulatedCamera(sensor, domain="crop", species=("tomato",), seed=4) as sim:
        for i in range(5):
            write_cube(folder / f"scan{i}.npz", cube_from_mosaic(sim.read().data, sensor), sensor.wavelengths())
        dark, white = capture_reference(sim, "dark", 2), capture_reference(sim, "white", 2)
    store = tmp_path / "references.npz"  # for the camera id camera_from_spec gives replay:.../scans
    refs = References("replay-scans", sensor.name, sensor.signature, dark=dark.mean, white=white.mean,
                      dark_meta=dark.to_meta("camera"), white_meta=white.to_meta("camera"))  # fmt: skip
    save_references(store, refs)
    camera = f"replay:{folder}?loop=true"  # looping: a pause between rounds discards the frames read ahead
    report = run_bench(BenchSettings("crop", backend="ort", mode="pipeline", niter=4, warmup=1, camera=camera,
                                     references=str(store)))  # fmt: skip
    (r,) = report["results"]
    assert r["camera"] == camera and r["errors"] == {} and "note" not in r
    assert r["count"] == 4 and [x["count"] for x in r["rounds"]] == [2, 2]  # niter 4: two rounds of two masks
    assert r["stages_ms"]["capture"]["median"] > 0  # reading a .npz file, on the capture thread
    # without ?loop the five files run out: the rounds after that are empty, and the report says so
    report = run_bench(BenchSettings("crop", backend="ort", mode="pipeline", niter=20, warmup=1,
                                     camera=f"replay:{folder}", references=str(store)))  # fmt: skip
    (r,) = report["results"]
    assert r["count"] <= 4 and "camera finished?" in r["note"]


def test_pipeline_mode_alternates_daemons_in_rounds_each_with_its_own_link():
    """Two targets as two open daemons, measured A, B, A, B for 0.8 s each, each into its own pty."""
    pytest.importorskip("openvino")
    report = run_bench(BenchSettings("crop", backend="ort,openvino", mode="pipeline", time_s=0.8, rounds=2, warmup=1,
                                     link="pty", baud=921_600))  # fmt: skip
    by_target = {r["target"]: r for r in report["results"]}
    assert set(by_target) == {CROP_ORT, CROP_OV}
    spans = sorted((x["start_s"], x["end_s"], x["seq"], r["target"]) for r in by_target.values() for x in r["rounds"])
    # the rounds ran one at a time, in the order of seq, alternating the two targets
    assert [s[2] for s in spans] == [0, 1, 2, 3]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert [s[3] for s in spans] == [n for n in CROP_TARGETS if n in by_target] * 2  # in manifest order
    for r in by_target.values():
        assert [x["round"] for x in r["rounds"]] == [0, 1] and r["errors"] == {}
        assert r["count"] == sum(x["count"] for x in r["rounds"]) and all(x["count"] >= 2 for x in r["rounds"])
        assert r["duration_s"] >= 0.8  # the time share: first-to-last mask within rounds, summed
        assert r["throughput_fps"] == pytest.approx((r["count"] - 2) / r["duration_s"], rel=1e-3)
        assert r["duration_s"] <= sum(x["end_s"] - x["start_s"] for x in r["rounds"])
        # each daemon wrote its own pty, and its reader decoded exactly its masks (warm-up included)
        assert r["masks_received"] == r["count"] + 1 and r["link_dropped_bytes"] == 0
        assert r["stages_ms"]["infer"]["median"] > 0 and r["rss_growth_mb"] is not None


def test_pipeline_round_that_cannot_reach_its_time_share_ends_at_the_guard(monkeypatch):
    """A timed round whose masks never add up to its share (a stalling camera) is stopped by a timer."""
    from xenoedge.bench import pipeline as bench_pipeline

    monkeypatch.setattr(bench_pipeline, "ROUND_GUARD_S", 0.3)
    monkeypatch.setattr(bench_pipeline, "ROUND_GUARD_FACTOR", 0.0)
    report = run_bench(BenchSettings("crop", backend="ort", mode="pipeline", time_s=100.0, rounds=2, warmup=1))
    (r,) = report["results"]
    assert [x["round"] for x in r["rounds"]] == [0, 1]
    assert all(x["end_s"] - x["start_s"] < 5.0 for x in r["rounds"])  # not 50 s each
    assert r["duration_s"] < 100.0


def test_compare_measures_an_earlier_bundle_in_the_same_rounds_on_the_same_frames(monkeypatch):
    """--compare: the previous default (kept in benchmarks/baselines) joins the alternating rounds."""
    baseline = BASELINE_CROP
    order = []
    real = measure._run_chunk
    monkeypatch.setattr(measure, "_run_chunk", lambda cfg, n, ns: (order.append(cfg.target), real(cfg, n, ns)))
    settings = BenchSettings("crop", backend="ort,openvino", niter=2, warmup=1, rounds=2, compare=str(baseline))
    report = run_bench(settings)
    names = [r["target"] for r in report["results"]]
    compared = [n for n in names if n.startswith("pixel-mlp-2026-11/crop:")]
    assert sorted(compared) == [
        "pixel-mlp-2026-11/crop:cpu-onnxruntime-int8",
        "pixel-mlp-2026-11/crop:cpu-openvino-int8",
    ]
    assert len(names) > len(compared) and order == names * 2  # one alternation over both bundles
    for r in report["results"]:
        _check_result(r, 2)
        assert r["fps_ratio"] > 0
    with pytest.raises(BenchError, match="engine mode"):
        run_bench(BenchSettings("crop", mode="pipeline", compare=str(baseline)))
    with pytest.raises(BenchError, match="takes 100 bands"):
        run_bench(BenchSettings("crop", niter=1, compare="surgical"))
