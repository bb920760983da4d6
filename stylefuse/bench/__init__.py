"""Benchmarks of the training step, projection and generation: `python -m stylefuse.bench`."""
