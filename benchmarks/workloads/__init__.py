"""The five workloads of the suite, each a module with a ``run`` returning an `Outcome`."""
