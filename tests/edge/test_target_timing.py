"""target_order="measured": the bundle's targets timed on this device, the fastest opened, the
timing cached per bundle and CPU; explicit prefer still wins; a bad cache is measured again."""

from __future__ import annotations

import json

import pytest
from daemon_fixtures import crop_bundle_fixture  # noqa: F401  (the crop_bundle fixture)
from xenoedge.edge.config import ConfigError, DaemonConfig
from xenoedge.edge.engines import EngineError, EngineOptions, engine_candidates, open_engine
from xenoedge.edge.target_timing import timing_cache_path
from xenoedge.export.bundle import extract_bundle, read_manifest


@pytest.fixture(scope="module")
def bundle(crop_bundle, tmp_path_factory):
    folder = extract_bundle(crop_bundle, tmp_path_factory.mktemp("timing") / "bundle")
    manifest = read_manifest(folder)
    assert len(engine_candidates(manifest)) >= 2  # ONNX Runtime and OpenVINO targets, both runnable here
    return folder, manifest


def test_the_fastest_measured_target_opens_and_the_timing_is_cached(bundle, tmp_path):
    folder, manifest = bundle
    options = EngineOptions(threads=2, cache_dir=tmp_path, target_order="measured")
    engine = open_engine(folder, manifest, options=options)
    cache = timing_cache_path(tmp_path, manifest, options)
    times = json.loads(cache.read_text())["median_ms"]
    assert sorted(times) == sorted(manifest["targets"])
    assert all(ms > 0 for ms in times.values())
    assert engine.target == min(times, key=times.get)
    engine.close()

    # a later start reads the cache: the file is left as it was and decides alone
    before = (cache.stat().st_mtime_ns, cache.read_bytes())
    slowest = max(times, key=times.get)
    cache.write_text(json.dumps({"median_ms": {n: (0.5 if n == slowest else 9.0) for n in times}}))
    written = (cache.stat().st_mtime_ns, cache.read_bytes())
    assert written != before
    engine = open_engine(folder, manifest, options=options)
    assert engine.target == slowest  # what the cache says, not a new measurement
    assert (cache.stat().st_mtime_ns, cache.read_bytes()) == written
    engine.close()


def test_prefer_still_comes_first_and_rank_is_the_default(bundle, tmp_path):
    folder, manifest = bundle
    ranked = engine_candidates(manifest)[0][0]  # the bundle's own order (rank, then runtime and precision)
    other = next(n for n in manifest["targets"] if n != ranked)
    measured = EngineOptions(threads=2, cache_dir=tmp_path, target_order="measured")
    engine = open_engine(folder, manifest, prefer=[other], options=measured)
    assert engine.target == other
    engine.close()
    assert not (tmp_path / "target-times").exists()  # one target left after prefer: nothing to time
    engine = open_engine(folder, manifest, options=EngineOptions(threads=2, cache_dir=tmp_path))
    assert engine.target == ranked
    engine.close()
    assert not (tmp_path / "target-times").exists()  # rank: no timing at all


@pytest.mark.parametrize("content", ["not json", '{"median_ms": {"x": 1}}', '{"median_ms": {}}'])
def test_an_unreadable_or_foreign_cache_is_measured_again(bundle, tmp_path, content):
    folder, manifest = bundle
    options = EngineOptions(threads=2, cache_dir=tmp_path, target_order="measured")
    cache = timing_cache_path(tmp_path, manifest, options)
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    engine = open_engine(folder, manifest, options=options)
    times = json.loads(cache.read_text())["median_ms"]
    assert sorted(times) == sorted(manifest["targets"]) and engine.target == min(times, key=times.get)
    engine.close()


def test_another_thread_count_is_another_cache_entry(bundle, tmp_path):
    _, manifest = bundle
    one = timing_cache_path(tmp_path, manifest, EngineOptions(threads=1, target_order="measured"))
    two = timing_cache_path(tmp_path, manifest, EngineOptions(threads=2, target_order="measured"))
    assert one != two and one.parent == two.parent == tmp_path / "target-times"


def test_bad_target_order_is_refused_naming_the_choices(bundle):
    folder, manifest = bundle
    with pytest.raises(EngineError, match="target_order must be one of rank, measured, got 'fastest'"):
        open_engine(folder, manifest, options=EngineOptions(target_order="fastest"))
    with pytest.raises(ConfigError, match=r"engine\.target_order must be one of rank, measured"):
        DaemonConfig(target_order="fastest")


def test_the_daemon_opens_the_target_it_measured_fastest(crop_bundle, tmp_path):
    """``[engine] target_order = "measured"`` in a daemon: the timing lands in its model cache and
    the daemon serves masks with the fastest target."""
    from xenoedge.devices.simulated import SimulatedCamera
    from xenoedge.edge.daemon import Daemon
    from xenoedge.edge.sinks import CollectingSink

    from xenoedge.sensors import get_sensor

    camera = SimulatedCamera(get_sensor("mosaic-5x5-nir"), domain="crop", species=("tomato",), seed=3)
    config = DaemonConfig(
        bundle=crop_bundle, camera="sim:crop", capture_frames=2, cache_dir=tmp_path, target_order="measured"
    )
    with Daemon(config, CollectingSink(), camera=camera) as daemon:
        stats = daemon.run(max_frames=2)
        served = daemon.models.engine.target
    (cache,) = (tmp_path / "target-times").glob("*.json")
    times = json.loads(cache.read_text())["median_ms"]
    assert served == min(times, key=times.get) and stats.masks == 2
