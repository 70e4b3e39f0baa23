"""edge-bench: latency, throughput and accuracy of bundle targets and of the whole daemon
pipeline, reported like OpenVINO's benchmark_app and trtexec (docs/bench.md).
``xenoedge.bench.main`` is the entry point (``run_bench``, the command line); ``configs`` says what to
measure, ``measure`` measures it, ``report`` writes and prints the report; ``common`` holds what the
others share and imports none of them."""
