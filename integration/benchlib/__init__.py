"""The pieces of ``integration/benchmark.py``: plan, measurement runtime, steps and report."""
