"""Benchmarks for metareg (see README)."""
