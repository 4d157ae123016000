"""The errors a user sees. Every message is one line saying what was wrong, where, and what is valid."""

from __future__ import annotations


class BenchError(Exception):
    """Base class; the CLI prints ``str(error)`` and exits with :attr:`exit_code`."""

    exit_code = 1


class UsageError(BenchError):
    """Bad input on the command line: an unknown name or an invalid parameter value."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name (objective, backend, dataset, metric, parameter, ...) that nothing registered."""


class ParameterError(UsageError):
    """A parameter value of the wrong type or out of range."""


class PluginError(BenchError):
    """A plugin failed to import or registered something malformed."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name in the same registry."""


class TrackingError(BenchError):
    """The MLflow tracking store cannot be reached or written."""


class TrialFailure(BenchError):
    """A trial could not finish: non-finite loss, a plugin returning the wrong thing, ..."""


class SkipTrial(BenchError):
    """A combination that is not implemented (e.g. an objective without a loss for this backend)."""
