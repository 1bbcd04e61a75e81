"""Tests of the command and the tools only it uses."""
