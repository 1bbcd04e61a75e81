"""Tests of the plumbing: connections, URLs, group commit, schema and setup."""
