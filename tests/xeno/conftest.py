"""Shared fixtures of the xeno tests."""

import pytest


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    """One run of the experiment's tiny preset (paper protocol), shared by the tests that read it."""
    from xenoedge.xeno.experiment import get_preset, run

    work = tmp_path_factory.mktemp("xeno-experiment") / "work"
    return run(get_preset("tiny"), work, log=lambda _m: None), work
