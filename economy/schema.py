"""A small declarative schema: one description that both validates and documents.

The game config is described once with these specs; :func:`validate` checks a
JSON value against a spec, fills defaults and reports *every* problem with its
JSON path, and :func:`json_schema` turns the same spec into JSON Schema
(draft 2020-12) for ``petbox game schema`` and the OpenAPI document. Keeping a
single description means the published schema can never drift from what the
server accepts.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Identifiers chosen by merchants (currencies, items, foods, species...)."""

MAX_TIME: Final = 4_102_444_800
"""2100-01-01: every time in a config is a unix second before it (a millisecond or
nanosecond figure typed by mistake is refused, not kept as a date in the far future)."""

Problems = list[dict[str, str]]


@dataclass(frozen=True)
class Spec:
    """Base of all specs; ``default`` MISSING means the field is required."""

    description: str = ""
    default: Any = MISSING

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


def _problem(problems: Problems, path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def _with_meta(spec: Spec, out: dict[str, Any]) -> dict[str, Any]:
    if spec.description:
        out["description"] = spec.description
    # A default of None means "leave it out: absent, the field is off or the server
    # decides"; no spec accepts null itself, so null is never published as a default
    # (a client following the schema would send it and get a 422).
    if spec.default is not MISSING and spec.default is not None:
        out["default"] = spec.default
    return out


def _check_range(value: float, minimum: float | None, maximum: float | None, path: str,
                 problems: Problems) -> None:
    """Report a number outside the optional inclusive bounds of an Int or Num spec."""
    if minimum is not None and value < minimum:
        _problem(problems, path, f"must be ≥ {minimum}")
    if maximum is not None and value > maximum:
        _problem(problems, path, f"must be ≤ {maximum}")


def _range_schema(kind: str, minimum: float | None, maximum: float | None) -> dict[str, Any]:
    """The JSON Schema of a number ``kind`` with the bounds that are set."""
    out: dict[str, Any] = {"type": kind}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


@dataclass(frozen=True)
class Int(Spec):
    """An integer within the optional bounds; ``choices``, when given, are the only
    values accepted (a ``count`` of 1 or 10), and the schema says so with ``enum``."""

    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[int, ...] = ()

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        # JSON Schema counts 1.0 as an integer, so petbox does too (as the int 1).
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            _problem(problems, path, "must be an integer")
            return None
        if self.choices and value not in self.choices:
            _problem(problems, path, f"must be one of {', '.join(map(str, self.choices))}")
            return None
        _check_range(value, self.minimum, self.maximum, path, problems)
        return value

    def schema(self) -> dict[str, Any]:
        if self.choices:
            return _with_meta(self, {"type": "integer", "enum": list(self.choices)})
        return _with_meta(self, _range_schema("integer", self.minimum, self.maximum))


@dataclass(frozen=True)
class Num(Spec):
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _problem(problems, path, "must be a number")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            _problem(problems, path, "must be finite")
            return None
        _check_range(value, self.minimum, self.maximum, path, problems)
        return float(value)

    def schema(self) -> dict[str, Any]:
        return _with_meta(self, _range_schema("number", self.minimum, self.maximum))


@dataclass(frozen=True)
class Bool(Spec):
    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, bool):
            _problem(problems, path, "must be true or false")
            return None
        return value

    def schema(self) -> dict[str, Any]:
        return _with_meta(self, {"type": "boolean"})


@dataclass(frozen=True)
class Str(Spec):
    pattern: str | None = None
    min_length: int = 0
    max_length: int = 200

    @functools.cached_property
    def least(self) -> int:
        """The least length the error and the JSON Schema state: ``min_length``, or 1
        where it is 0 but the pattern refuses the empty string (so a length error says
        "1..64", not "0..64"; a pattern's own longer minimum is its to say). Worked out
        once per spec (specs are module constants, checked on every request)."""
        if self.min_length or self.pattern is None \
                or re.fullmatch(self.pattern.strip("^$"), "") is not None:
            return self.min_length
        return 1

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, str):
            _problem(problems, path, "must be a string")
            return None
        if not self.least <= len(value) <= self.max_length:
            _problem(problems, path,
                     f"length must be {self.least}..{self.max_length}, is {len(value)}")
        elif self.pattern is not None and not re.fullmatch(self.pattern.strip("^$"), value):
            _problem(problems, path, f"must match {self.pattern}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "minLength": self.least,
                               "maxLength": self.max_length}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return _with_meta(self, out)


@dataclass(frozen=True)
class Enum(Spec):
    values: tuple[str, ...] = ()

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if value not in self.values:
            _problem(problems, path, f"must be one of {', '.join(self.values)}")
            return None
        return value

    def schema(self) -> dict[str, Any]:
        return _with_meta(self, {"type": "string", "enum": list(self.values)})


@dataclass(frozen=True)
class Arr(Spec):
    items: Spec = field(default_factory=Spec)
    min_items: int = 0
    max_items: int = 1000

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, list):
            _problem(problems, path, "must be an array")
            return None
        if not self.min_items <= len(value) <= self.max_items:
            _problem(problems, path, f"must have {self.min_items}..{self.max_items} entries")
            return None
        return [self.items.check(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]

    def schema(self) -> dict[str, Any]:
        return _with_meta(self, {"type": "array", "items": self.items.schema(),
                                 "minItems": self.min_items, "maxItems": self.max_items})


@dataclass(frozen=True)
class Map(Spec):
    """An object used as a dictionary: keys are identifiers, values share one spec."""

    values: Spec = field(default_factory=Spec)
    key_pattern: str = ID_PATTERN
    min_items: int = 0
    max_items: int = 500

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, dict):
            _problem(problems, path, "must be an object")
            return None
        if not self.min_items <= len(value) <= self.max_items:
            _problem(problems, path, f"must have {self.min_items}..{self.max_items} entries")
            return None
        out: dict[str, Any] = {}
        key_re = re.compile(self.key_pattern.strip("^$"))
        for key, item in value.items():
            sub = f"{path}.{key}"
            if not key_re.fullmatch(key):
                _problem(problems, sub, f"key must match {self.key_pattern}")
                continue
            out[key] = self.values.check(item, sub, problems)
        return out

    def schema(self) -> dict[str, Any]:
        return _with_meta(self, {
            "type": "object",
            "propertyNames": {"pattern": self.key_pattern},
            "additionalProperties": self.values.schema(),
            "minProperties": self.min_items,
            "maxProperties": self.max_items,
        })


@dataclass(frozen=True)
class Obj(Spec):
    """An object with named fields; unknown fields are problems (typos must not pass)."""

    fields: dict[str, Spec] = field(default_factory=dict)

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, dict):
            _problem(problems, path, "must be an object")
            return None
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in value:
                out[name] = spec.check(value[name], f"{path}.{name}", problems)
            elif spec.default is MISSING:
                _problem(problems, f"{path}.{name}", "is required")
            else:
                out[name] = copy.deepcopy(spec.default)
        for name in value:
            if name not in self.fields:
                _problem(problems, f"{path}.{name}", "is not a known field")
        return out

    def schema(self) -> dict[str, Any]:
        required = [n for n, s in self.fields.items() if s.default is MISSING]
        out: dict[str, Any] = {
            "type": "object",
            "properties": {n: s.schema() for n, s in self.fields.items()},
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        return _with_meta(self, out)


def validate(spec: Spec, value: Any, path: str = "$") -> tuple[Any, Problems]:
    """Check ``value`` against ``spec``; return the value with defaults filled and problems."""
    problems: Problems = []
    cleaned = spec.check(value, path, problems)
    return cleaned, problems


def json_schema(spec: Spec, title: str) -> dict[str, Any]:
    """JSON Schema (2020-12) for ``spec``."""
    out = spec.schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **out}
