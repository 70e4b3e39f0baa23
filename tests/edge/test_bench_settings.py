"""edge-bench speaks like benchmark_app / trtexec (issue 16): the effective settings in every report, load
(compile) apart from the first inference (one run on bound inputs), one compile per configuration, model
size per target, ``--profile`` by operator type, and the summary table with pass/fail. Real ONNX Runtime and
OpenVINO runs on the packaged crop bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from xenoedge.bench.configs import BenchSettings
from xenoedge.bench.main import main, run_bench
from xenoedge.bench.measure import gate_results
from xenoedge.bench.settings import cpu_info, model_files, profile_by_type

pytest.importorskip("onnxruntime")


def _targets(name: str) -> dict:
    from xenoedge.edge.builtin_bundles import default_bundle
    from xenoedge.export.bundle import read_manifest

    return read_manifest(default_bundle(name))["targets"]


CROP = _targets("crop")
(CROP_ORT,) = [n for n, t in CROP.items() if t["runtime"] == "onnxruntime"]
(CROP_OV,) = [n for n, t in CROP.items() if t["runtime"] == "openvino"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One --json report of both crop targets with --profile (written and read back as a user would)."""
    pytest.importorskip("openvino")
    out = tmp_path_factory.mktemp("bench") / "r.json"
    rc = main(["crop", "--backend", "ort,openvino", "-niter", "4", "--warmup", "2", "--rounds", "2", "--profile",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    return json.loads(out.read_text())


def test_json_report_carries_the_effective_settings(report):
    host = report["host"]
    cpu = host["cpu"]
    assert host["processor"] and cpu["model"] == host["processor"]  # was null before
    if Path("/proc/cpuinfo").is_file() and cpu["isa"]:
        for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni", "fma", "sse4_2"):
            assert isinstance(cpu["isa"][flag], bool)
        assert cpu["flags_present"] == [f for f, on in cpu["isa"].items() if on]
    assert host["versions"]["onnxruntime"] and host["versions"]["openvino"]
    assert host["openvino_cpu"]["optimization_capabilities"]  # e.g. FP32, INT8 (BF16 on AMX CPUs)
    by_target = {r["target"]: r for r in report["results"]}
    ort, ov = by_target[CROP_ORT]["settings"], by_target[CROP_OV]["settings"]
    for st in (ort, ov):
        assert st["runtime_version"] and st["effective_precision"] and "threads" in st
        assert st["cache"] == "off" and st["cache_folder"] is None  # no --cache-dir
    assert ort["runtime"] == "onnxruntime" and ort["providers"][-1] == "CPUExecutionProvider"
    assert isinstance(ort["provider_options"], dict)
    assert ov["runtime"] == "openvino" and ov["execution_devices"] == ["CPU"] and ov["threads"] >= 1
    assert ov["performance_hint"] and ov["streams"] and ov["effective_precision"] in ("f32", "bf16", "f16")
    assert report["schema_version"] == 3


def test_model_size_per_target_is_the_files_on_disk(report):
    for r in report["results"]:
        listed = {Path(f["path"]).name: f["size"] for f in CROP[r["target"]]["files"]}
        assert r["model_files"] and set(r["model_files"]) <= set(listed)
        assert r["model_bytes"] == sum(listed[name] for name in r["model_files"])
    ov = next(r for r in report["results"] if r["target"] == CROP_OV)
    assert sorted(Path(f).suffix for f in ov["model_files"]) == [".bin", ".xml"]


def test_load_is_the_engines_own_compile_and_first_inference_one_run_of_its_own(report):
    for r in report["results"]:
        # load_ms: the runtime's session creation / compile, as the engine timed it; the whole open (read,
        # reshape, buffers) is open_ms; input copies and references are bind_ms; none is in first_inference_ms
        assert r["load_ms"] == r["settings"]["load_ms"] > 0
        assert r["open_ms"] >= r["load_ms"] and r["bind_ms"] >= 0 and r["first_inference_ms"] > 0
    ort = next(r for r in report["results"] if r["target"] == CROP_ORT)
    # ORT's profiler counted every run of every node: exactly one first run + 2 warm-up + the timed ones,
    # so the first inference was a single run
    assert ort["profile"]["frames"] == 1 + 2 + ort["count"]
    assert all(row["calls"] == row["nodes"] * ort["profile"]["frames"] for row in ort["profile"]["by_type"])


def test_profile_sums_operator_types_that_exist_in_the_graph(report, capsys):
    for r in report["results"]:
        prof = r["profile"]
        by_type = {row["op_type"]: row for row in prof["by_type"]}
        conv = "Conv" if r["runtime"] == "onnxruntime" else "Convolution"
        assert by_type[conv]["ms_per_frame"] > 0 and by_type[conv]["precision"]
        assert prof["total_ms_per_frame"] > 0
        assert sum(row["percent"] for row in prof["by_type"]) == pytest.approx(100, abs=0.5)
    ov = next(r for r in report["results"] if r["target"] == CROP_OV)
    # OpenVINO's kernels name their precision: the INT8 target's convolutions run I8 kernels
    assert any("I8" in row["precision"] or "i8" in row["precision"] for row in ov["profile"]["by_type"])


def test_profile_and_summary_are_printed(capsys):
    rc = main(["crop", "--backend", "ort", "-niter", "2", "--warmup", "1", "--rounds", "1", "--profile"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "summary: crop" in out and "size MB" in out and "first inf. ms" in out and "pass" in out
    assert "effective settings" in out and "CPU " in out and "ISA" in out
    assert f"profile {CROP_ORT}" in out and "Conv" in out and "% of total" in out


def test_openvino_with_a_hint_is_compiled_once_and_cached_once(tmp_path):
    """-hint: the configuration is compiled once with the hint (one blob in its cache folder, written by the
    first run, imported by the second); load_ms times that compile."""
    pytest.importorskip("openvino")
    cache = tmp_path / "cache"
    runs = []
    for _ in range(2):
        report = run_bench(BenchSettings("crop", backend="openvino", hint="latency", niter=2, warmup=1, rounds=1,
                                         cache_dir=str(cache)))  # fmt: skip
        (r,) = report["results"]
        runs.append(r)
        assert r["settings"]["compile_config"]["PERFORMANCE_HINT"] == "LATENCY"
        assert r["settings"]["performance_hint"] == "LATENCY" and (r["nireq"], r["hint"]) == (1, "latency")
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]  # one configuration, one cache folder
    assert len(list(folder.glob("*.blob"))) == 1  # compiled once: a second compile would store a second blob
    assert [r["settings"]["cache"] for r in runs] == ["built", "loaded"]
    assert runs[0]["settings"]["cache_folder"] == runs[1]["settings"]["cache_folder"] == str(folder)


def test_offline_openvino_queue_runs_on_the_one_compiled_model(tmp_path):
    pytest.importorskip("openvino")
    cache = tmp_path / "cache"
    report = run_bench(BenchSettings("crop", backend="ort,openvino", hint="throughput", nireq=2, niter=4, warmup=1,
                                     rounds=1, cache_dir=str(cache)))  # fmt: skip
    ov = next(r for r in report["results"] if r["runtime"] == "openvino")
    assert ov["hint"] == "throughput" and ov["nireq"] == 2 and ov["settings"]["performance_hint"] == "THROUGHPUT"
    assert ov["settings"]["cache"] == "built" and ov["load_ms"] == ov["settings"]["load_ms"] > 0
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert len(list(folder.glob("*.blob"))) == 1
    ort = next(r for r in report["results"] if r["runtime"] == "onnxruntime")
    assert ort["settings"]["threads"] == ort["intra_op_threads"]  # the engine's own session, opened for the requests


def test_gate_passes_and_fails_on_the_baselines_accuracy():
    base = {"target": "a", "status": "ok", "count": 3, "dsc_truth": 0.90, "selftest_agreement": 1.0,
            "selftest_passed": True}  # fmt: skip
    close = {"target": "b", "status": "ok", "count": 3, "dsc_truth": 0.895, "selftest_agreement": 0.99,
             "selftest_passed": True}  # fmt: skip
    far = {"target": "c", "status": "ok", "count": 3, "dsc_truth": 0.85}
    broken = {"target": "d", "status": "ok", "count": 3, "selftest_passed": False, "note": "self-test failed: 0.5"}
    idle = {"target": "e", "status": "ok", "count": 0}
    results = [base, close, far, broken, idle]
    gate_results(results, base, 0.01)
    assert [r["passed"] for r in results] == [True, True, False, False, False]
    assert "drop 0.5 / 1 points" in close["gate"] and "drop 5.0 / 1 points" in far["gate"]
    assert broken["gate"] == "self-test failed: 0.5" and idle["gate"] == "did not run"
    assert close["dsc_drop"] == pytest.approx(0.005)


def test_cpu_info_and_model_files_helpers(tmp_path):
    info = cpu_info("processor : 0\nvendor_id : AuthenticAMD\nmodel name : AMD EPYC\nflags : fpu avx2 fma sse4_2\n")
    assert info["model"] == "AMD EPYC" and info["isa"]["avx2"] and not info["isa"]["avx512f"]
    arm = cpu_info("processor : 0\nFeatures : fp asimd asimdhp\nCPU implementer : 0x41\n")
    assert arm["flags_present"] == ["asimd", "asimdhp"] and "avx2" not in arm["isa"]
    (tmp_path / "m.xml").write_bytes(b"x" * 10)
    (tmp_path / "m.bin").write_bytes(b"x" * 100)
    assert model_files(tmp_path / "m.xml") == (["m.xml", "m.bin"], 110)
    assert model_files(tmp_path / "none.onnx") == ([], None)
    assert profile_by_type([]) == []
