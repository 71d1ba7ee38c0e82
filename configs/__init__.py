"""Experiment files: one experiment per file, ``CONFIG = Experiment(...)``."""
