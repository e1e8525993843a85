"""``python -m simsearch``."""

from simsearch.cli.main import main

main()
