"""Finite-difference sliced score matching for benchbench (a third-party plugin)."""

__version__ = "0.1.0"
