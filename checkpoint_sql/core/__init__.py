"""The plumbing every layer above runs on: engines and their connections, transactions
and calls (sync and async), SQLite group commit, compiled statements, keys and bounds,
leases, and the migrations runner. Nothing here knows what a checkpoint is."""
