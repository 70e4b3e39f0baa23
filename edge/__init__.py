"""Device-side runtime: daemon, engines, wire protocol, flashing, edge-bench and the CLI."""
