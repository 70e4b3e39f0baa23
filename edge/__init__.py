"""Device-side runtime: daemon, engines, wire protocol, flashing, edge-bench and the CLI.

OpenBLAS is limited to one thread before NumPy loads (unless the environment says otherwise):
the device's matrix products are small, and OpenBLAS's thread pool was seen to spin forever
beside ONNX Runtime's, OpenVINO's and torch's pools in one process. Library telemetry is off
(``calibration.telemetry``, imported here before anything else can import OpenVINO or NNCF).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from calibration.telemetry import disable_telemetry

disable_telemetry()
