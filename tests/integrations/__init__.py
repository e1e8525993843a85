"""Tests for simsearch.integrations."""
