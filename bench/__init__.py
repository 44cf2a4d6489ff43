"""Benchmarks run by hand with `jincun bench ...`; each prints its figures, the last line one JSON object."""
