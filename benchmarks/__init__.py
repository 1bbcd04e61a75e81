"""The benchmark suite of checkpoint_sql: ``python -m benchmarks`` (see README.md here)."""
