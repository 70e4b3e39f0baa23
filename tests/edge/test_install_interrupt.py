"""Interrupt an install (and a rollback, and the recovery itself) at every durable step.

Two ways to stop the device:

* a real process killed at step k (``os._exit`` inside ``on_step``; forked from a forkserver
  that has the code imported), for every step of a clean install;
* an in-process power cut (a ``BaseException`` raised from ``on_step``) with a model of what a
  real power cut loses: the content of a file written but not yet fsynced is truncated to a
  random prefix, and a rename whose folder was not yet fsynced may be undone (``state.json``
  falls back to its last durable bytes, an unpacked folder goes back into staging).

After each stop the device "restarts" (a new ``SlotStore`` and ``recover()``) and the checks of
issue 8 run: exactly one active slot, every file in it matches its manifest, it serves masks (its
engine runs the golden self-test), the other slot is complete or discarded, staging is empty,
and the switch happened exactly when the ``state.json`` rename became durable.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from xenoedge.edge.flashing import SlotStore, check_slot_files, install_bundle
from xenoedge.edge.flashing.selftest import selftest_slot
from xenoedge.export.bundle import file_sha256, read_manifest

from tests.edge.install_fixtures import CROP_BUNDLE, KILLED_EXIT, ORT_ONLY, install_and_die_at, policy, variant

RANDOM_RUNS = 1000
SERVE_EVERY = 50  # random runs whose active slot also runs its engine (hashes are checked on all)


class PowerCut(BaseException):
    """The power went off right after a durable step."""


class Disk:
    """What survives a power cut on a disk that only promises what was fsynced (see module doc)."""

    def __init__(self, root: Path, rng: np.random.Generator, lossy: bool):
        self.root, self.rng, self.lossy = root, rng, lossy
        self.dirty: set[str] = set()
        self.renames: list[str] = []
        state = root / "state.json"
        self.durable_state = state.read_bytes() if state.exists() else None

    def observe(self, name: str) -> None:
        operation, rel = name.split(" ", 1)
        if operation == "write":
            self.dirty.add(rel)
        elif operation == "fsync":
            self.dirty.discard(rel)
        elif operation == "rename":
            self.renames.append(rel)
        elif operation == "fsync-dir":
            self.renames = [r for r in self.renames if Path(r).parent.as_posix() != rel]
            if rel == ".":
                self.durable_state = (self.root / "state.json").read_bytes()

    def cut(self) -> None:
        if not self.lossy:
            return
        for rel in sorted(self.dirty):
            path = self.root / rel
            if path.is_file():
                size = path.stat().st_size
                with open(path, "r+b") as f:
                    f.truncate(int(self.rng.integers(0, size + 1)))
        for n, rel in enumerate(reversed(self.renames)):
            if self.rng.random() < 0.5:
                continue
            path = self.root / rel
            if rel == "state.json":
                if self.durable_state is None:
                    path.unlink()
                else:
                    path.write_bytes(self.durable_state)
            elif path.exists():
                path.rename(self.root / "staging" / f".undone-{n}.partial")


def cut_at(kill_at: int | None, disk: Disk | None = None):
    """An ``on_step`` that cuts the power right after step ``kill_at`` (None: never)."""
    count = 0

    def on_step(name: str) -> None:
        nonlocal count
        if disk is not None:
            disk.observe(name)
        if count == kill_at:
            if disk is not None:
                disk.cut()
            raise PowerCut(name)
        count += 1

    return on_step


def restart_and_check(root: Path, allowed: set[tuple[str, str]], *, serve: bool) -> tuple[str, str] | None:
    """A new SlotStore + recover(); the checks of the module doc. Returns the active (version,
    sha256), or None when the device has never had a bundle."""
    store = SlotStore(root)
    store.recover()
    state = store.read_state()
    assert list(store.staging_dir.iterdir()) == []
    assert sorted(p.name for p in store.slots_dir.iterdir()) == sorted(s for s in "ab" if state["slots"][s])
    active = store.active()
    for info in (active, store.inactive()):
        if info is None:
            continue
        record = state["slots"][info.slot]
        assert check_slot_files(info.folder, record["manifest_sha256"]) is None
        assert (info.version, info.sha256) in allowed
    if active is None:
        return None
    assert state["active"] in ("a", "b")
    if serve:
        result = selftest_slot(active.folder, read_manifest(active.folder), runtimes=ORT_ONLY)
        assert result["passed"] and result["agreement"] >= result["min_agreement"]
    return active.version, active.sha256


@pytest.fixture
def fast_tmp(tmp_path):
    """A folder in RAM (/dev/shm) where there is one: the same filesystem calls, cheaper fsyncs
    (the loss model above stands for what a real disk would drop)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="xenoedge-flash-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Bundles v0 (older), v1 (the active, known-good one), v2 (the new one) and template state
    folders: ``ab`` (b = v1 active and good, a = v0), ``a`` (b empty), ``empty``, ``pending``
    (a = v1 good, b = v2 active and unconfirmed: for rollbacks)."""
    base = tmp_path_factory.mktemp("interrupt")
    v0 = variant(base / "v0.xeb", version="0.9.0")
    v1 = CROP_BUNDLE
    v2 = variant(base / "v2.xeb", version="2.0.0")
    ids = {name: (read_manifest(b)["version"], file_sha256(b)) for name, b in (("v0", v0), ("v1", v1), ("v2", v2))}
    no_selftest = policy(self_test=False)
    templates = {}
    for name in ("ab", "a", "empty", "pending"):
        store = SlotStore(base / "templates" / name)
        if name == "ab":
            install_bundle(store, v0, no_selftest)
            store.mark_good()
        if name != "empty":
            install_bundle(store, v1, no_selftest, replace_known_good=True)
            store.mark_good()
        if name == "pending":
            install_bundle(store, v2, no_selftest)
        templates[name] = store.root
    return {"base": base, "bundles": {"v0": v0, "v1": v1, "v2": v2}, "ids": ids, "templates": templates}


def fresh(world: dict, template: str, dest: Path) -> Path:
    shutil.copytree(world["templates"][template], dest)
    return dest


def clean_steps(world: dict, template: str, tmp: Path) -> list[str]:
    root = fresh(world, template, tmp / f"clean-{template}")
    report = install_bundle(SlotStore(root), world["bundles"]["v2"], policy(self_test=False))
    return report.steps


def expected_after_install(steps: list[str], kill_at: int, ids: dict, template: str, lossy: bool) -> set:
    """Which active (version, sha256) a restart may find after a cut at ``kill_at``."""
    commit = max(i for i, s in enumerate(steps) if s == "rename state.json")
    old = {ids["v1"]} if template != "empty" else {None}
    if kill_at < commit:
        return old
    if kill_at == commit and lossy:
        return old | {ids["v2"]}
    return {ids["v2"]}


def test_clean_install_steps_are_all_reported(world, fast_tmp):
    tmp_path = fast_tmp
    steps = clean_steps(world, "ab", tmp_path)
    operations = {s.split(" ")[0] for s in steps}
    assert {"write", "fsync", "mkdir", "rename", "fsync-dir", "remove"} <= operations
    # the old slot b is released in state.json before its folder goes, then unpacked, then switched
    release = steps.index("rename state.json")
    target = steps[release + 2].removeprefix("remove ")
    assert target in ("slots/a", "slots/b")
    assert steps.index(f"rename {target}") < max(i for i, s in enumerate(steps) if s == "rename state.json")
    assert steps[-1] == "remove staging/bundle.xeb"


def test_a_real_process_killed_at_every_step(world, fast_tmp):
    """For every durable step of a clean install over a device with both slots full, a forked
    device process dies exactly there; the restarted device serves masks from a verified slot."""
    tmp_path = fast_tmp
    steps = clean_steps(world, "ab", tmp_path)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["xenoedge.edge.flashing", "tests.edge.install_fixtures"])
    ids = world["ids"]
    allowed = {ids["v0"], ids["v1"], ids["v2"]}
    outcomes = []
    for kill_at in range(len(steps)):
        root = fresh(world, "ab", tmp_path / f"kill-{kill_at}")
        child = ctx.Process(target=install_and_die_at, args=(str(root), str(world["bundles"]["v2"]), kill_at))
        child.start()
        child.join(60)
        assert child.exitcode == KILLED_EXIT, (kill_at, steps[kill_at], child.exitcode)
        active = restart_and_check(root, allowed, serve=True)
        assert active in expected_after_install(steps, kill_at, ids, "ab", lossy=False), (kill_at, steps[kill_at])
        outcomes.append(active)
        shutil.rmtree(root)
    assert outcomes[0] == ids["v1"] and outcomes[-1] == ids["v2"]


@pytest.mark.parametrize("template", ["ab", "a", "empty"])
def test_power_cut_with_lost_unsynced_data_at_every_step(world, fast_tmp, template):
    tmp_path = fast_tmp
    steps = clean_steps(world, template, tmp_path)
    ids = world["ids"]
    allowed = {ids["v0"], ids["v1"], ids["v2"]}
    rng = np.random.default_rng(8)
    for kill_at in range(len(steps)):
        for lossy in (False, True):
            root = fresh(world, template, tmp_path / f"cut-{kill_at}-{lossy}")
            disk = Disk(root, rng, lossy)
            with pytest.raises(PowerCut):
                install_bundle(
                    SlotStore(root), world["bundles"]["v2"], policy(self_test=False), on_step=cut_at(kill_at, disk)
                )
            active = restart_and_check(root, allowed, serve=False)
            assert active in expected_after_install(steps, kill_at, ids, template, lossy), (
                kill_at,
                steps[kill_at],
                lossy,
            )
            shutil.rmtree(root)


def test_interrupted_rollback_leaves_one_of_the_two_slots_active(world, fast_tmp):
    tmp_path = fast_tmp
    ids = world["ids"]
    allowed = {ids["v1"], ids["v2"]}
    rng = np.random.default_rng(9)
    clean = []
    SlotStore(fresh(world, "pending", tmp_path / "clean")).rollback("test", on_step=clean.append)
    assert clean == ["write .state.json.tmp", "fsync .state.json.tmp", "rename state.json", "fsync-dir ."]
    for kill_at in range(len(clean)):
        for lossy in (False, True):
            root = fresh(world, "pending", tmp_path / f"rb-{kill_at}-{lossy}")
            disk = Disk(root, rng, lossy)
            with pytest.raises(PowerCut):
                SlotStore(root).rollback("new model failed its first frames", on_step=cut_at(kill_at, disk))
            active = restart_and_check(root, allowed, serve=True)
            rename = clean.index("rename state.json")
            if kill_at < rename or (kill_at == rename and lossy):
                assert active in {ids["v1"], ids["v2"]}
            else:
                assert active == ids["v1"]
            shutil.rmtree(root)


@pytest.mark.slow
def test_a_thousand_installs_with_random_power_cuts(world, fast_tmp):
    """Seeded: random device (both slots full, one, none), random cut point in the install (or
    none), lossy or not, and sometimes a second cut during the recovery itself."""
    tmp_path = fast_tmp
    rng = np.random.default_rng(20251126)
    ids = world["ids"]
    allowed = {ids["v0"], ids["v1"], ids["v2"]}
    counts = {}
    for template in ("ab", "a", "empty"):
        counts[template] = clean_steps(world, template, tmp_path)
    switched = 0
    for run in range(RANDOM_RUNS):
        template = ("ab", "a", "empty")[int(rng.integers(0, 3))]
        steps = counts[template]
        kill_at = int(rng.integers(0, len(steps) + 1))  # len(steps): the install finishes
        lossy = bool(rng.integers(0, 2))
        root = fresh(world, template, tmp_path / f"run-{run}")
        disk = Disk(root, rng, lossy)
        store = SlotStore(root)
        if kill_at < len(steps):
            with pytest.raises(PowerCut):
                install_bundle(store, world["bundles"]["v2"], policy(self_test=False), on_step=cut_at(kill_at, disk))
        else:
            install_bundle(store, world["bundles"]["v2"], policy(self_test=False))
        if rng.random() < 0.2:  # the power goes again while the device recovers
            recover_steps = int(rng.integers(0, 6))
            try:
                SlotStore(root).recover(on_step=cut_at(recover_steps, Disk(root, rng, lossy)))
            except PowerCut:
                pass
        active = restart_and_check(root, allowed, serve=run % SERVE_EVERY == 0)
        if kill_at < len(steps):
            assert active in expected_after_install(steps, kill_at, ids, template, lossy), (run, kill_at, lossy)
        else:
            assert active == ids["v2"]
        switched += active == ids["v2"]
        shutil.rmtree(root)
    assert 0 < switched < RANDOM_RUNS


def test_interrupted_automatic_rollback_still_ends_on_the_known_good_slot(world, fast_tmp):
    """The start that rolls an unconfirmed slot back (its 4th) loses power at each of its steps:
    the next start rolls back again, so the device always ends on the known-good bundle."""
    tmp_path = fast_tmp
    ids = world["ids"]
    base = fresh(world, "pending", tmp_path / "base")
    for _ in range(3):
        SlotStore(base).recover()  # three failed starts of the unconfirmed v2
    clean = []
    probe = fresh_copy(base, tmp_path / "probe")
    SlotStore(probe).recover(on_step=clean.append)
    assert SlotStore(probe).active().version == ids["v1"][0] and "rename state.json" in clean
    rng = np.random.default_rng(10)
    for kill_at in range(len(clean)):
        for lossy in (False, True):
            root = fresh_copy(base, tmp_path / f"auto-{kill_at}-{lossy}")
            with pytest.raises(PowerCut):
                SlotStore(root).recover(on_step=cut_at(kill_at, Disk(root, rng, lossy)))
            assert restart_and_check(root, {ids["v1"], ids["v2"]}, serve=kill_at == 0) == ids["v1"]
            shutil.rmtree(root)


def fresh_copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
