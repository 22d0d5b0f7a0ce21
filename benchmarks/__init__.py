"""Performance benchmarks; figures and commands in docs/benchmarks.md."""
