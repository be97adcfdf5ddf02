"""Benchmarks (``make bench`` / ``python -m bench NAME``): throughput figures, never timed tests."""
