"""``python -m simsearch``."""

from simsearch.cli.main import run

run()
