"""Tests for simsearch.store."""
