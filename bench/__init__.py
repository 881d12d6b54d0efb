"""Benchmarks: each module prints a side-by-side table and records its figures."""
