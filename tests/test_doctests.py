"""The docstring examples of every installed module, run under the module's one real name.

pytest's ``--doctest-modules`` on the source folders would import ``edge/engines.py`` a second
time as ``edge.engines`` beside ``xenoedge.edge.engines`` (the folders install under one root
through a package-dir mapping, docs/architecture.md). Here each module is imported as users
import it, and ``doctest`` runs its examples; one test per module that has any.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _modules_with_examples() -> list[str]:
    """Names of the ``xenoedge.*`` modules whose source holds a ``>>>`` example.

    The packages come from pyproject's explicit list (the folders are mapped into ``xenoedge``,
    so walking ``xenoedge.__path__`` would not see them); each is imported to find its files.
    """
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    names = []
    for package in packages:
        init = importlib.import_module(package).__file__
        if init and ">>> " in Path(init).read_text(encoding="utf-8"):
            names.append(package)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
            spec = None if info.ispkg else info.module_finder.find_spec(info.name, None)
            if spec and spec.origin and ">>> " in Path(spec.origin).read_text(encoding="utf-8"):
                names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_walk_finds_examples_in_every_layer():
    layers = {name.split(".")[1] for name in MODULES}
    assert {"calibration", "edge", "export", "xeno"} <= layers, sorted(layers)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    tests = [test for test in finder.find(module, name) if test.examples]
    assert tests, f"{name}: a '>>> ' in the source but no example found"
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
