"""``xenoedge.export.bundle`` is what the device imports: it must work with torch, onnx, onnxruntime,
openvino and nncf all unimportable (DESIGN.md section 3)."""

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "onnxslim", "onnxconverter_common")

CODE = f"""
import importlib.abc, sys, tempfile, pathlib
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {HEAVY!r}:
            raise ImportError('the device must not import ' + name)
sys.meta_path.insert(0, Block())
import xenoedge.export.bundle as b
from xenoedge.export.bundle.testing import write_demo_bundle
import xenoedge.cli.bundle
private, public = b.generate_keypair()
d = pathlib.Path(tempfile.mkdtemp())
bundle = write_demo_bundle(d / 'x.xeb', signing_key=private)
dest = b.extract_bundle(bundle, d / 'slot', public_key=public, require_signature=True)
b.load_selftest(dest, b.read_manifest(dest))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})
assert not loaded, loaded
print('ok')
"""


def test_bundle_package_imports_nothing_heavy():
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={"PYTHONPATH": str(root)},
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
