"""benchbench: a plugin-based benchmark suite for score-matching objectives."""

__version__ = "0.1.0"

from benchbench.hookspecs import hookimpl  # noqa: E402  (the one name every plugin imports)

__all__ = ["__version__", "hookimpl"]
