"""Benchmarks: scripts that print tables of medians and ratios measured side by side."""
