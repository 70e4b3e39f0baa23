"""The architecture holds (docs/architecture.md): import contracts, no private names across
modules, and a package list that installs every source folder under the one ``xenoedge`` root."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]  # xenoedge.edge -> edge


def _folder_of(package: str) -> Path:
    """Source folder of an installed package name (``xenoedge.edge.links`` -> ``edge/links``)."""
    for root in sorted(PACKAGE_DIRS, key=len, reverse=True):
        if package == root or package.startswith(root + "."):
            rest = package[len(root) :].lstrip(".")
            return REPO / PACKAGE_DIRS[root] / Path(*rest.split(".")) if rest else REPO / PACKAGE_DIRS[root]
    raise AssertionError(f"{package}: no package-dir entry")


def test_every_source_folder_is_an_installed_package_and_nothing_else():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for root, folder in PACKAGE_DIRS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                rel = init.parent.relative_to(REPO / folder)
                found.add(".".join([root, *rel.parts]))
    assert listed == found, f"missing from pyproject: {sorted(found - listed)}; not a folder: {sorted(listed - found)}"
    assert all(p == "xenoedge" or p.startswith("xenoedge.") for p in listed)  # one import root


def _wheel_shaped_copy(dest: Path) -> Path:
    """The ``.py`` files laid out as the wheel installs them (``dest/xenoedge/edge/...``)."""
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        target = dest / Path(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in _folder_of(package).glob("*.py"):
            shutil.copy2(source, target / source.name)
    return dest


def test_import_contracts_are_kept(tmp_path):
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the dev extra)")
    tree = _wheel_shaped_copy(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [lint, "--config", str(REPO / "pyproject.toml")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_imports_a_private_name_of_another_module():
    offenders = []
    for folder in sorted(set(PACKAGE_DIRS.values())):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xenoedge"):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    if private:
                        offenders.append(f"{path.relative_to(REPO)}: from {node.module} import {', '.join(private)}")
    assert not offenders, "\n".join(offenders)


LONG_MODULE_LINES = 600


def test_a_module_above_600_lines_says_why_at_its_top():
    """docs/architecture.md, "Long modules": split by job, or the reason is in the module docstring."""
    unexplained = []
    for folder in sorted(set(PACKAGE_DIRS.values())):
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text()
            if text.count("\n") > LONG_MODULE_LINES:
                docstring = ast.get_docstring(ast.parse(text)) or ""
                if "Why one file" not in docstring:
                    unexplained.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert not unexplained, "no 'Why one file' reason at the top of: " + ", ".join(unexplained)


def test_the_wheel_installs_only_xenoedge_and_imports_from_another_folder(tmp_path):
    """The built wheel claims no generic top-level name and works without the source tree."""
    import zipfile

    wheel_dir = tmp_path / "wheel"
    # built as pip builds it for users: in an isolated environment with the build-system requirements
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir)]
    build = subprocess.run([*command, str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheel_dir.glob("xenoedge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    assert {n.split("/")[0] for n in names} == {
        "xenoedge",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "xenoedge/edge/default_bundles/surgical.xeb" in names
    code = (
        "import xenoedge.edge.engines as engines, xenoedge.cli.main\n"
        "from xenoedge.edge.builtin_bundles import default_bundle\n"
        "assert default_bundle('crop').is_file()\n"
        "print(engines.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(tmp_path / "site"))
