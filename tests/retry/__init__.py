"""Tests of retrying: the policy, the error classifier, real faults, what a retry repeats."""
