"""edge-bench on the packaged bundles: metrics, reports, alternating backends, bad input, pipeline mode."""

from __future__ import annotations

import csv
import json
import math

import pytest

from edge import bench
from edge.bench import CSV_COLUMNS, SCHEMA_VERSION, BenchError, BenchSettings, main, run_bench
from edge.engines import ENGINES, EngineKind

pytest.importorskip("onnxruntime")


def _check_result(r: dict, niter: int) -> None:
    lat = r["latency_ms"]
    assert r["count"] == niter
    assert r["duration_s"] > 0
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    # throughput of a single stream cannot exceed 1 / min latency, and is close to 1 / mean
    assert 0 < r["throughput_fps"] <= 1e3 / lat["min"] * 1.01
    assert r["throughput_fps"] == pytest.approx(1e3 / lat["mean"], rel=0.5)
    assert r["first_inference_ms"] >= r["load_ms"] > 0
    assert r["cpu_util"] > 0
    assert r["peak_rss_mb"] is None or r["peak_rss_mb"] > 0


def test_engine_mode_writes_json_and_csv(tmp_path):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = main(["crop", "--backend", "ort", "-niter", "6", "--warmup", "1", "--percentile", "75",
               "--json", str(out_json), "--csv", str(out_csv)])  # fmt: skip
    assert rc == 0
    text = out_json.read_text()
    assert text.lstrip().startswith(f'{{\n  "schema_version": {SCHEMA_VERSION}')
    report = json.loads(text)
    (r,) = report["results"]
    assert r["target"] == "cpu-onnxruntime-int8" and r["runtime"] == "onnxruntime" and r["mode"] == "engine"
    _check_result(r, 6)
    assert r["latency_percentile"] == 75 and r["latency_ms"]["median"] <= r["latency_pct_ms"] <= r["latency_ms"]["max"]
    assert r["selftest_agreement"] == pytest.approx(1.0, abs=0.05)
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 1 and int(rows[0]["count"]) == 6
    assert math.isclose(float(rows[0]["latency_median_ms"]), r["latency_ms"]["median"])


def test_backend_all_runs_every_runnable_target_alternating(monkeypatch):
    pytest.importorskip("openvino")
    order = []
    real = bench._run_chunk
    monkeypatch.setattr(bench, "_run_chunk", lambda cfg, n, ns: (order.append(cfg.target), real(cfg, n, ns)))
    report = run_bench(BenchSettings("crop", backend="all", niter=4, warmup=1, rounds=2))
    targets = [r["target"] for r in report["results"]]
    assert sorted(targets) == ["cpu-onnxruntime-int8", "cpu-openvino-int8"]
    assert order == targets * 2  # A, B, A, B: drift hits both alike
    for r in report["results"]:
        _check_result(r, 4)
    assert report["notes"] == []


def test_time_limit(monkeypatch):
    report = run_bench(BenchSettings("crop", backend="ort", time_s=0.2, warmup=0, rounds=2))
    (r,) = report["results"]
    assert r["duration_s"] >= 0.2 and r["count"] >= 1


def test_backend_not_installed_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setitem(ENGINES, "openvino", EngineKind("openvino", lambda spec, o: [], None, lambda: ()))
    report = run_bench(BenchSettings("crop", backend="all", niter=2, warmup=0))
    assert [r["target"] for r in report["results"]] == ["cpu-onnxruntime-int8"]
    assert report["notes"] == ["skipped cpu-openvino-int8: openvino is not installed"]
    with pytest.raises(BenchError, match=r"nothing to measure.*openvino is not installed"):
        run_bench(BenchSettings("crop", backend="openvino", niter=2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(backend="torch"), r"unknown backend 'torch'; available: ort, openvino, all"),
        (dict(device="XPU"), r"unknown device 'XPU'; available: devices CPU, GPU, NPU, AUTO.*cpu-openvino-int8"),
        (dict(device="tensorrt"), r"bundle crop has no target for .*its targets: cpu-onnxruntime-int8"),
        (dict(mode="offline"), r"unknown mode 'offline'; available: engine, pipeline"),
        (dict(niter=0), r"-niter must be >= 1"),
    ],
)
def test_bad_input_lists_what_is_available(settings, message):
    with pytest.raises(BenchError, match=message):
        run_bench(BenchSettings("crop", **settings))


def test_device_gpu_without_gpu_is_skipped_not_run_on_cpu(monkeypatch):
    import onnxruntime

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        pytest.skip("this machine has a GPU provider")
    monkeypatch.setitem(ENGINES, "openvino", EngineKind("openvino", lambda spec, o: [], None, lambda: ("CPU",)))
    with pytest.raises(BenchError, match=r"nothing to measure") as err:
        run_bench(BenchSettings("crop", device="GPU", niter=2))
    assert "cpu-onnxruntime-int8: -d GPU asked, onnxruntime has only CPUExecutionProvider here" in str(err.value)
    assert "cpu-openvino-int8: openvino has no usable device here (has CPU)" in str(err.value)


def test_bad_input_exits_1_with_a_message(tmp_path, capsys):
    assert main([str(tmp_path / "missing.xeb")]) == 1
    assert main(["crop", "--backend", "tflite"]) == 1


def test_pipeline_mode_runs_a_few_frames():
    report = run_bench(BenchSettings("crop", backend="ort", mode="pipeline", niter=4, warmup=1))
    (r,) = report["results"]
    assert r["mode"] == "pipeline" and r["engine"].startswith("cpu-onnxruntime-int8 on onnxruntime")
    assert r["count"] == 4 and r["errors"] == {} and r["dropped"] >= 0
    assert 0 < r["latency_ms"]["min"] <= r["latency_ms"]["max"]
    assert r["throughput_fps"] > 0 and r["first_inference_ms"] >= r["load_ms"] > 0


def test_plot_is_written_or_skipped_with_a_note(tmp_path):
    out = tmp_path / "lat.png"
    assert main(["crop", "--backend", "ort", "-niter", "3", "--warmup", "0", "--plot", str(out)]) == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not out.exists()
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
