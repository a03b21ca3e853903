"""``python -m chatface`` runs the command line."""

from chatface.cli.main import run

run()
