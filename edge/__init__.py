"""The device runtime: daemon, engines, wire protocol, links, flashing, sinks, handheld scanning.

The command line is ``xenoedge.cli`` and edge-bench is ``xenoedge.bench``; process-wide set-up
(OpenBLAS threads, telemetry off) happens in ``xenoedge/__init__.py``, before any of this loads.
"""
