"""The ``chatface`` command line: one module per command group."""
