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
        "import calibration, devices, edge, export.bundle\n"
        "for package in (calibration, devices, edge, export.bundle):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "from devices.simulated import SimulatedCamera\n"
        "from calibration.sensors import get_sensor\n"
        "with SimulatedCamera(get_sensor('mosaic-5x5-nir')) as cam: cam.read()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
