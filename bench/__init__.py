"""The benchmark suite: ``make bench`` (``python -m bench``). Not tests: nothing here asserts a
time; every figure that matters is a ratio between two things measured in the same run."""
