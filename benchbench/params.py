"""Declared parameters of objectives, datasets, samplers and executors, and the ``NAME:key=value`` syntax.

Every plugin object declares its parameters once, with a default and optional bounds; the CLI parses
``denoising:sigma=0.5`` into strings and :func:`resolve` turns them into typed, validated values, so a
plugin never sees a value it did not declare.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchbench.errors import ParameterError, UnknownNameError

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "floats": tuple, "path": str}
_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "floats": "comma-separated numbers",
    "path": "a file path",
}


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``type`` is one of int, float, str, bool, floats (a comma-separated list of floats), path; it is
    inferred from ``default`` when omitted. ``low``/``high`` are inclusive bounds for numbers (and
    for every element of ``floats``); ``choices`` restricts strings. ``loss_independent`` says why the loss's
    value for a given model does not depend on the parameter: it changes only the cost (a chunk size, another
    algorithm for the same number), the network a backend builds, or what is evaluated after training. The
    conformance kit checks that every other parameter changes the loss, and exempts these with that reason.
    """

    name: str
    default: Any
    help: str = ""
    type: str | None = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    loss_independent: str = ""

    @property
    def kind(self) -> str:
        if self.type is not None:
            if self.type not in _TYPES:
                raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}, valid: {sorted(_TYPES)}")
            return self.type
        if isinstance(self.default, bool):
            return "bool"
        for name, py in (("int", int), ("float", float), ("floats", tuple)):
            if isinstance(self.default, py):
                return name
        return "str"

    def describe(self) -> str:
        """A short text of the valid values, used in error messages and ``bench list``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        text = _WORDS[self.kind]
        if self.low is not None and self.high is not None:
            text += f" in [{self.low}, {self.high}]"
        elif self.low is not None:
            text += f" >= {self.low}"
        elif self.high is not None:
            text += f" <= {self.high}"
        return text

    def convert(self, raw: Any, where: str) -> Any:
        """Return ``raw`` (a CLI string or a Python value) as this parameter's type, or raise ParameterError."""
        kind = self.kind
        try:
            value = _convert(kind, raw)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{where}: parameter {self.name}={raw!r} is not valid; expected {self.describe()}"
            ) from None
        numbers = value if kind == "floats" else (value,) if kind in ("int", "float") else ()
        for number in numbers:
            if not math.isfinite(number):
                raise ParameterError(
                    f"{where}: parameter {self.name}={raw!r} is not a finite number; expected {self.describe()}"
                )
            if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
                raise ParameterError(
                    f"{where}: parameter {self.name}={raw!r} is out of range; expected {self.describe()}"
                )
        if self.choices and value not in self.choices:
            raise ParameterError(
                f"{where}: parameter {self.name}={raw!r} is not valid; expected {self.describe()}"
                + _suggest(str(value), self.choices)
            )
        return value


def _convert(kind: str, raw: Any) -> Any:
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind == "int":
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        if isinstance(raw, bool):
            raise TypeError(raw)
        return int(raw) if not isinstance(raw, str) else int(raw.strip())
    if kind == "float":
        if isinstance(raw, bool):
            raise TypeError(raw)
        return float(raw)
    if kind == "floats":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        values = tuple(float(item) for item in items)
        if not values:
            raise ValueError(raw)
        return values
    if kind == "path" and isinstance(raw, str | os.PathLike):
        # Absolute, so a trial run by another process or executor reads the same file.
        return os.path.abspath(os.path.expanduser(raw))
    if isinstance(raw, str):
        return raw
    raise TypeError(raw)


def close_match(name: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _suggest(name: str, options: Iterable[str]) -> str:
    match = close_match(name, options)
    return f" (did you mean {match!r}?)" if match else ""


def unknown_name(kind: str, name: str, options: Iterable[str]) -> UnknownNameError:
    """The one-line error for a name nothing registered, with the valid names and a close match."""
    options = sorted(options)
    return UnknownNameError(
        f"unknown {kind} {name!r}; valid: {', '.join(options) or '(none installed)'}" + _suggest(name, options)
    )


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME:key=value,key=value`` into the name and raw string values.

    A comma-separated piece without ``=`` belongs to the previous value, so list values read
    naturally: ``gmm:weights=0.8,0.2,k=2``.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ParameterError(f"{text!r}: missing a name before ':'")
    values: dict[str, str] = {}
    last: str | None = None
    for piece in rest.split(",") if rest.strip() else []:
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip()
            if not key:
                raise ParameterError(f"{text!r}: empty parameter name in {piece!r}")
            if key in values:
                raise ParameterError(f"{text!r}: parameter {key!r} given twice")
            values[key] = value.strip()
            last = key
        elif last is not None:
            values[last] += "," + piece.strip()
        else:
            raise ParameterError(f"{text!r}: expected key=value, got {piece!r}")
    return name, values


def resolve(where: str, declared: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for every declared parameter: ``given`` validated, defaults for the rest."""
    by_name = {param.name: param for param in declared}
    for key in given:
        if key not in by_name:
            valid = ", ".join(sorted(by_name)) or "(it takes no parameters)"
            raise ParameterError(f"{where}: unknown parameter {key!r}; valid: {valid}" + _suggest(key, by_name))
    return {
        param.name: param.convert(given[param.name], where) if param.name in given else param.default
        for param in declared
    }


def format_spec(name: str, values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """The inverse of :func:`parse_spec`, listing only values that differ from ``defaults``."""
    shown = {k: v for k, v in values.items() if defaults is None or defaults.get(k) != v}
    if not shown:
        return name
    return name + ":" + ",".join(f"{k}={_format_value(v)}" for k, v in sorted(shown.items()))


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
