"""What the tests and the benchmarks share: the live server in a subprocess."""
