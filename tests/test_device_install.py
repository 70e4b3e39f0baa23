"""The device install must run without torch, onnx or nncf (DESIGN.md section 3)."""

import subprocess
import sys

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'onnx', 'nncf', 'openvino', 'onnxslim', 'simpa'}:
            raise ImportError('device install must not import ' + name)
sys.meta_path.insert(0, Block())
"""


def test_device_packages_import_without_heavy_dependencies():
    # every module of the device packages, found by walking them (a hand-kept list goes stale)
    code = BLOCKER + (
        "import importlib, pkgutil\n"
        "import xenoedge, xenoedge.calibration, xenoedge.devices, xenoedge.edge, xenoedge.export.bundle\n"
        "for package in (xenoedge.calibration, xenoedge.devices, xenoedge.edge, xenoedge.export.bundle):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "from xenoedge.devices.simulated import SimulatedCamera\n"
        "from xenoedge.sensors import get_sensor\n"
        "with SimulatedCamera(get_sensor('mosaic-5x5-nir')) as cam: cam.read()\n"
    )
    # from another folder: the installed package, not the source folders on the path
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
