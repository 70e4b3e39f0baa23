"""The ``xenoedge`` command line: one module per command group, each thin (parse, call the
library, print). ``xenoedge.cli.main`` builds the app and is the console script."""
