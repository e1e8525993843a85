"""Tests for simsearch.server."""
