"""Benchmarks run by `./dev bench NAME`; each prints one JSON document."""
