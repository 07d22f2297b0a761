"""Servers and load client of the end-to-end echo benchmark (benchmarks/echo_bench.py)."""
