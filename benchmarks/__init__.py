"""Side-by-side speed measurements for simsearch (``python -m benchmarks``; not run by the tests)."""
