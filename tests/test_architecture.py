"""The architecture holds (docs/architecture.md): import contracts and no private names across modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("calibration", "devices", "edge", "export", "xeno")


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the dev extra)")
    result = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_imports_a_private_name_of_another_module():
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    if private:
                        offenders.append(f"{path.relative_to(REPO)}: from {node.module} import {', '.join(private)}")
    assert not offenders, "\n".join(offenders)
