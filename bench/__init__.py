"""Benchmarks of vxcache; `python -m bench` runs them all."""
