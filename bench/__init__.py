"""Benchmarks: each prints its figures and a JSON line."""
