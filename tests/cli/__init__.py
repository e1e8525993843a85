"""Tests for simsearch.cli."""
