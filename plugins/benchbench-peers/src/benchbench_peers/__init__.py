"""Other libraries' score-matching losses as benchbench objectives (a third-party plugin)."""

__version__ = "0.1.0"
