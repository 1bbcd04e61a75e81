"""Retrying transient database faults: which errors are transient (per engine), the
backoff policy, and the saver wrapped in it."""
