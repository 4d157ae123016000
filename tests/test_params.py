"""The NAME:key=value syntax and declared-parameter validation."""

from __future__ import annotations

import pytest

from benchbench.errors import ParameterError, UnknownNameError
from benchbench.params import Param, format_spec, parse_spec, resolve, unknown_name


def test_parse_spec_with_values_and_lists():
    assert parse_spec("gaussian") == ("gaussian", {})
    assert parse_spec("gaussian:dim=16") == ("gaussian", {"dim": "16"})
    assert parse_spec("gmm:k=2,weights=0.8,0.2,std=1") == ("gmm", {"k": "2", "weights": "0.8,0.2", "std": "1"})


@pytest.mark.parametrize("text", [":dim=3", "gaussian:3", "gaussian:dim=1,dim=2", "gaussian:=4"])
def test_parse_spec_rejects_malformed(text):
    with pytest.raises(ParameterError):
        parse_spec(text)


def test_resolve_types_defaults_and_bounds():
    declared = (
        Param("dim", 2, low=1),
        Param("sigma", 0.1, low=0.0),
        Param("w", (1.0,)),
        Param("flag", False),
        Param("kind", "a", choices=("a", "b")),
    )
    values = resolve("dataset 'x'", declared, {"dim": "16", "w": "0.5,0.5", "flag": "true", "kind": "b"})
    assert values == {"dim": 16, "sigma": 0.1, "w": (0.5, 0.5), "flag": True, "kind": "b"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"dim": "two"}, "parameter dim='two' is not valid; expected an integer >= 1"),
        ({"dim": "0"}, "out of range"),
        ({"dim": "1.5"}, "not valid"),
        ({"sigma": "nan"}, "sigma='nan' is not a finite number"),
        ({"sigma": "inf"}, "sigma='inf' is not a finite number"),
        ({"sigma": "0.1,-inf"}, "not valid"),
        ({"dimm": "3"}, "unknown parameter 'dimm'; valid: dim, sigma (did you mean 'dim'?)"),
    ],
)
def test_resolve_errors_name_the_owner_parameter_and_valid_values(given, message):
    declared = (Param("dim", 2, low=1), Param("sigma", 0.1, low=0.0))
    with pytest.raises(ParameterError) as error:
        resolve("dataset 'gaussian'", declared, given)
    assert str(error.value).startswith("dataset 'gaussian': ")
    assert message in str(error.value)


def test_choices_suggest_a_close_match():
    with pytest.raises(ParameterError, match="did you mean 'rademacher'"):
        resolve(
            "objective 'sliced'",
            (Param("projection", "gaussian", choices=("gaussian", "rademacher")),),
            {"projection": "rademacher_"},
        )


def test_unknown_name_lists_valid_names_and_close_match():
    error = unknown_name("objective", "slcied", ["sliced", "exact"])
    assert isinstance(error, UnknownNameError)
    assert str(error) == "unknown objective 'slcied'; valid: exact, sliced (did you mean 'sliced'?)"


def test_format_spec_round_trips():
    text = format_spec("gmm", {"k": 2, "weights": (0.8, 0.2)})
    name, raw = parse_spec(text)
    assert name == "gmm"
    assert resolve("x", (Param("k", 1), Param("weights", (1.0,))), raw) == {"k": 2, "weights": (0.8, 0.2)}
