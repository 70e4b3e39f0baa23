"""xenoedge: cross-species hyperspectral segmentation from training to the edge.

One import root for everything the distribution installs (docs/architecture.md). This base
package holds what every layer shares: the error root (``xenoedge.errors``), atomic file
writes (``xenoedge.atomic``), sensor profiles (``xenoedge.sensors``) and the switch that turns
library telemetry off (``xenoedge.telemetry``). Importing it is cheap (standard library and
NumPy only) and happens before any subpackage, so it is the one place for process-wide set-up:

- OpenBLAS is limited to one thread before NumPy loads (unless the environment says otherwise):
  the matrix products here are small, and OpenBLAS's thread pool was seen to spin forever beside
  ONNX Runtime's, OpenVINO's and torch's pools in one process;
- the telemetry of every library is off before anything can import OpenVINO or NNCF.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from xenoedge.telemetry import disable_telemetry

disable_telemetry()
