"""Tests of the companion stores."""
