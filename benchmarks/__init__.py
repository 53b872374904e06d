"""Benchmarks: performance ratios measured side by side (``python -m benchmarks``), retrieval modes, server load."""
