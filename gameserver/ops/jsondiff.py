"""A readable diff between two JSON documents, as a list of JSON-path changes.

Used to compare game config versions (``getGameVersionDiff``, ``petbox game
diff``). Paths use the same notation as config validation problems
(``$.foods.snack.price.acorn``, ``$.series[2].weight``), so a merchant reads a
diff and a validation error the same way. Objects are compared key by key
(sorted), arrays index by index: an array that grew reports ``added`` entries at
the new indexes, one that shrank reports ``removed`` ones.
"""

from __future__ import annotations

import re
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for keys a dot path cannot show unambiguously."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{escaped}"]'


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1`` and ``True`` differ, ``1`` and ``1.0`` do not."""
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float) and isinstance(b, int | float)
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def diff(old: Any, new: Any, path: str = "$") -> list[dict[str, Any]]:
    """Every difference from ``old`` to ``new``: ``{"path", "op", "from"?, "to"?}``.

    ``op`` is ``added`` (with ``to``), ``removed`` (with ``from``) or ``changed``
    (with both). Changes come in document order (object keys sorted). Equal
    documents give ``[]``. Recursive: configs are at most 32 levels deep (the
    request decoder refuses deeper JSON).
    """
    out: list[dict[str, Any]] = []
    _walk(path, old, new, out)
    return out


def _walk(at: str, a: Any, b: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        _walk_dict(at, a, b, out)
    elif isinstance(a, list) and isinstance(b, list):
        _walk_list(at, a, b, out)
    elif not _same(a, b):
        out.append({"path": at, "op": "changed", "from": a, "to": b})


def _walk_dict(at: str, a: dict[str, Any], b: dict[str, Any], out: list[dict[str, Any]]) -> None:
    for key in sorted(a.keys() | b.keys()):
        sub = _key_path(at, key)
        if key not in b:
            out.append({"path": sub, "op": "removed", "from": a[key]})
        elif key not in a:
            out.append({"path": sub, "op": "added", "to": b[key]})
        else:
            _walk(sub, a[key], b[key], out)


def _walk_list(at: str, a: list[Any], b: list[Any], out: list[dict[str, Any]]) -> None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        _walk(f"{at}[{i}]", x, y, out)
    for i in range(len(b), len(a)):
        out.append({"path": f"{at}[{i}]", "op": "removed", "from": a[i]})
    for i in range(len(a), len(b)):
        out.append({"path": f"{at}[{i}]", "op": "added", "to": b[i]})
