"""``python -m simsearch``."""

from .cli import main

main()
