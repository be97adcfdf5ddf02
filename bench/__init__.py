"""Benchmarks (not timed tests): ``python -m bench [NAME ...]``; see docs/performance.md."""
