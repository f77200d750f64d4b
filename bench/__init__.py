"""Benchmarks (not part of the test suite's pass/fail); results in BENCHMARKS.md."""
