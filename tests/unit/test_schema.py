"""The declarative schema: every problem with its JSON path, defaults, JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from economy.schema import Arr, Bool, Enum, Int, Map, Num, Obj, Str, json_schema, validate

SPEC = Obj(fields={
    "name": Str(min_length=1, max_length=5),
    "count": Int(minimum=0, maximum=10, default=3),
    "ratio": Num(minimum=0, maximum=1, default=0.5),
    "on": Bool(default=False),
    "kind": Enum(values=("a", "b"), default="a"),
    "tags": Arr(items=Str(pattern="^[a-z]+$"), max_items=2, default=[]),
    "prices": Map(values=Int(minimum=0), default={}),
})


def test_defaults_are_filled_and_fresh() -> None:
    first, problems = validate(SPEC, {"name": "x"})
    assert problems == []
    assert first == {"name": "x", "count": 3, "ratio": 0.5, "on": False, "kind": "a",
                     "tags": [], "prices": {}}
    first["tags"].append("mutated")
    second, _ = validate(SPEC, {"name": "y"})
    assert second["tags"] == []


@pytest.mark.parametrize(("value", "problems"), [
    ({}, [{"path": "$.name", "message": "is required"}]),
    ({"name": ""}, [{"path": "$.name", "message": "length must be 1..5, is 0"}]),
    ({"name": "x", "count": 11}, [{"path": "$.count", "message": "must be ≤ 10"}]),
    ({"name": "x", "count": True}, [{"path": "$.count", "message": "must be an integer"}]),
    ({"name": "x", "count": 1.5}, [{"path": "$.count", "message": "must be an integer"}]),
    ({"name": "x", "count": 1e300}, [{"path": "$.count", "message": "must be an integer"}]),
    ({"name": "x", "ratio": float("nan")}, [{"path": "$.ratio", "message": "must be finite"}]),
    ({"name": "x", "kind": "c"}, [{"path": "$.kind", "message": "must be one of a, b"}]),
    ({"name": "x", "tags": ["ok", "Bad"]},
     [{"path": "$.tags[1]", "message": "must match ^[a-z]+$"}]),
    ({"name": "x", "tags": ["a", "b", "c"]},
     [{"path": "$.tags", "message": "must have 0..2 entries"}]),
    ({"name": "x", "prices": {"Bad Key": 1, "ok": -1}},
     [{"path": "$.prices.Bad Key", "message": "key must match ^[a-z0-9][a-z0-9_-]{0,63}$"},
      {"path": "$.prices.ok", "message": "must be ≥ 0"}]),
    ({"name": "x", "typo": 1}, [{"path": "$.typo", "message": "is not a known field"}]),
    ([], [{"path": "$", "message": "must be an object"}]),
])
def test_every_problem_has_its_path(value: Any, problems: list[dict[str, str]]) -> None:
    assert validate(SPEC, value)[1] == problems


def test_integral_floats_are_integers() -> None:
    cleaned, problems = validate(SPEC, {"name": "x", "count": 2.0})
    assert problems == [] and cleaned["count"] == 2 and type(cleaned["count"]) is int


@pytest.mark.parametrize(("pattern", "least"), [(r"^[a-z]+$", 1), (r"^[a-z]{2,8}$", 1),
                                              (r"^[a-z]*$", 0), (None, 0)])
def test_a_length_error_says_1_when_the_pattern_refuses_the_empty_string(
        pattern: str | None, least: int) -> None:
    """A pattern that refuses "" makes 1 the least length (the error said "0..8"); a
    longer minimum of the pattern's own (``{2,8}``) is the pattern's error to say."""
    spec = Obj(fields={"id": Str(pattern=pattern, max_length=8)})
    assert validate(spec, {"id": "x" * 9})[1] == [
        {"path": "$.id", "message": f"length must be {least}..8, is 9"}]
    assert spec.schema()["properties"]["id"]["minLength"] == least


def test_all_problems_at_once() -> None:
    _, problems = validate(SPEC, {"count": -1, "on": "yes", "extra": 0})
    assert [p["path"] for p in problems] == ["$.name", "$.count", "$.on", "$.extra"]


def test_json_schema() -> None:
    schema = json_schema(SPEC, "t")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["count"] == {"type": "integer", "minimum": 0, "maximum": 10,
                                             "default": 3}
    assert schema["properties"]["prices"]["propertyNames"] == {
        "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                        max_size=3)))
def test_validate_never_raises(value: Any) -> None:
    cleaned, problems = validate(SPEC, value)
    assert problems or cleaned is not None
