"""A mechanic's slice of player state: the mechanics half of the registry's state part.

A mechanic that keeps something per player declares, in its state module
(``mechanics/<mechanic>state.py``, e.g. :mod:`mechanics.checkinstate`): the state
class itself, and a *slots* mixin — a
keyword-only dataclass with the typed attribute(s) it adds to
:class:`~mechanics.state.PlayerState` and, in ``SLICES``, one :class:`Slice`
per attribute saying how it is stored.

:class:`~mechanics.state.PlayerState` is the list of slots mixins (its base
classes); its ``to_wire``, ``from_wire`` and ``copy`` iterate :func:`slices_of`
and never name a mechanic. The state module cannot import
:mod:`mechanics.state` (that module imports it), which is why rules live in
their own module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


def never(value: Any) -> bool:
    """A slice that is always written."""
    return False


@dataclass(frozen=True)
class Slice:
    """One attribute of the player state and its compact wire form."""

    attr: str
    """attribute name on :class:`~mechanics.state.PlayerState`"""
    key: str
    """key in the msgpack wire map; never reused, never renamed (stored data has it)"""
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    """wire value → attribute; gets ``None`` when the key is absent (a state written
    before the slice existed), and must return the slice's default then"""
    copy: Callable[[Any], Any]
    """a deep copy: nothing mutable may be shared with the original"""
    omit: Callable[[Any], bool] = never
    """True when the value is the default and the key can be left out of the wire
    map: a slice added later omits its default, so a state that never used the new
    mechanic keeps its exact bytes"""


class StateSlots:
    """Base of a slots mixin: a keyword-only dataclass listed in PlayerState's bases."""

    SLICES: ClassVar[tuple[Slice, ...]] = ()


def slices_of(state_class: type) -> tuple[Slice, ...]:
    """The slices of a state class's slots mixins, in base-class order."""
    return tuple(s for cls in state_class.__mro__ for s in cls.__dict__.get("SLICES", ()))


def same(value: Any) -> Any:
    """Encode, decode or copy of an immutable value (an int, a string)."""
    return value


def copy_dict(value: dict[str, Any]) -> dict[str, Any]:
    """Copy of a flat dict of immutable values."""
    return dict(value)


def decode_dict(raw: Any) -> dict[str, Any]:
    """A flat dict from the wire, empty when absent."""
    return dict(raw or {})


def wire_map(d: dict[str, Any]) -> dict[str, Any]:
    """``{key: value.to_wire()}`` of a dict of records."""
    return {k: v.to_wire() for k, v in d.items()}


def copy_records(d: dict[str, Any]) -> dict[str, Any]:
    """``{key: value.copy()}`` of a dict of records."""
    return {k: v.copy() for k, v in d.items()}


def is_empty(value: Any) -> bool:
    """A slice left off the wire while empty (a mechanic the player never used)."""
    return not value


def records_slice(attr: str, key: str, from_wire: Callable[[Any], Any], *,
                  omit_empty: bool = False) -> Slice:
    """The slice of a dict of records (``id → record`` with ``to_wire`` and ``copy``,
    read back by ``from_wire``): what most mechanics keep per player. ``omit_empty``
    for a slice added after stored states existed (:attr:`Slice.omit`)."""
    def decode(raw: dict[str, Any] | None) -> dict[str, Any]:
        return {k: from_wire(v) for k, v in (raw or {}).items()}
    return Slice(attr, key, wire_map, decode, copy_records,
                 omit=is_empty if omit_empty else never)


def padded(raw: list[Any], defaults: list[Any]) -> list[Any]:
    """A record's wire list with the defaults of fields an older writer did not have."""
    return [*raw[:len(defaults)], *defaults[len(raw):]]


@dataclass(frozen=True)
class Codecs:
    """The hot-path functions of a state class, compiled from its slices."""

    to_wire: Callable[[Any], dict[str, Any]]
    from_wire: Callable[[dict[str, Any]], Any]
    copy: Callable[[Any], Any]


def compile_codecs(state_class: type, slices: tuple[Slice, ...]) -> Codecs:
    """``to_wire``, ``from_wire`` and ``copy`` written out slice by slice, as by hand.

    Every action copies, encodes and decodes a state, so these are generated once
    (the way :mod:`dataclasses` writes ``__init__``) rather than looping over the
    slices: a value stored as is costs no call, and nothing looks a slice up.
    The source is built from the slices' own names and keys only.
    """
    env: dict[str, Any] = {"_new": object.__new__, "_cls": state_class}
    wire, optional, decode, copy = [], [], [], []
    for i, s in enumerate(slices):
        env[f"_e{i}"], env[f"_d{i}"], env[f"_c{i}"], env[f"_o{i}"] = (
            s.encode, s.decode, s.copy, s.omit)
        value = f"v[{s.attr!r}]"
        encoded = value if s.encode is same else f"_e{i}({value})"
        if s.omit is never:
            wire.append(f"{s.key!r}: {encoded}")
        else:
            optional.append(f"    if not _o{i}({value}): out[{s.key!r}] = {encoded}")
        decode.append(f"{s.attr!r}: _d{i}(raw.get({s.key!r}))")
        copy.append(f"{s.attr!r}: {value if s.copy is same else f'_c{i}({value})'}")
    source = "\n".join([
        "def to_wire(self):",
        "    v = self.__dict__",
        f"    out = {{{', '.join(wire)}}}",
        *optional,
        "    return out",
        "def from_wire(raw):",
        "    new = _new(_cls)",
        f"    new.__dict__ = {{{', '.join(decode)}}}",
        "    return new",
        "def copy(self):",
        "    v = self.__dict__",
        "    new = _new(_cls)",
        f"    new.__dict__ = {{{', '.join(copy)}}}",
        "    return new",
    ])
    exec(source, env)  # the source is built above from slice attributes and keys only
    return Codecs(env["to_wire"], env["from_wire"], env["copy"])
