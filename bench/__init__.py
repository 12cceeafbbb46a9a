"""Benchmarks and chaos runs for runq (`make bench`, `make chaos`); see docs/benchmarks.md."""
