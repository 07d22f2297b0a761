"""Micro-benchmarks for reactor (run as ``python -m benchmarks.<name>``)."""
