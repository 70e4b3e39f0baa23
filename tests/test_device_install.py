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
    code = BLOCKER + (
        "import calibration, calibration.sensors, calibration.reflectance, calibration.bands\n"
        "import devices.camera, devices.formats, devices.replay, devices.simulated, devices.opencv_camera\n"
        "import devices.open_camera, devices.recording\n"
        "import edge, edge.cli, edge.device_cli, edge.daemon, edge.engines, edge.links, edge.protocol, export.bundle\n"
        "import edge.scan, edge.scan_cli, edge.devices_cli, edge.flashing, edge.flashing.slots, edge.flashing.install\n"
        "import edge.flashing.upload, edge.flashing.host, edge.flash_cli\n"
        "import edge.bench, edge.bench_inputs, edge.bench_offline, edge.bench_pipeline, edge.bench_torch\n"
        "from devices.simulated import SimulatedCamera\n"
        "from calibration.sensors import get_sensor\n"
        "with SimulatedCamera(get_sensor('mosaic-5x5-nir')) as cam: cam.read()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
