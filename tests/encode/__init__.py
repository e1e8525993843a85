"""Tests for simsearch.encode."""
