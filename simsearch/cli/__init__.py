"""The click commands: parse options, call the library once, render the result."""

from simsearch.cli.main import main

__all__ = ["main"]
