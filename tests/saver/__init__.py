"""Tests of the checkpoint saver: conformance, real graphs, behaviour, bad input, storage of lists, retention."""
