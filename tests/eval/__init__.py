"""Tests for simsearch.eval."""
