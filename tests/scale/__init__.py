"""Tests for the scale-out (sharded indexes, Ray)."""
