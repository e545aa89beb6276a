"""SLO gates: ``--slo p99=50ms --slo errors=0.1%`` turn a replay into pass/fail.

A gate is ``[operationId:]metric=limit``:

* ``p50``, ``p90``, ``p99``, ``p999``, ``p9999``, ``max``, ``mean`` — latency
  from the intended send time, with a unit ``us``, ``ms`` (default) or ``s``;
* ``errors`` — the share of failed requests, as ``0.1%`` or ``0.001``;
* ``lateness_p99`` — the scheduler's own send-time error (a check on the
  load generator rather than on the server).

With an ``operationId:`` prefix the gate applies to that operation only
(``feedPet:p99=80ms``). A gate passes when the measured value is at most the
limit. :data:`BREACH_EXIT_CODE` is what the CLI exits with when one fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BREACH_EXIT_CODE = 3
_GATE = re.compile(r"^(?:(?P<op>[A-Za-z]+):)?(?P<metric>[a-z0-9_]+)\s*(?:<=|=)\s*(?P<value>.+)$")
_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
LATENCY_METRICS = ("p50", "p90", "p99", "p999", "p9999", "max", "mean")


class SloError(ValueError):
    """A gate that cannot be parsed."""


@dataclass(frozen=True)
class Gate:
    """One limit: ``metric`` (of ``op``, or of everything) at most ``limit``."""

    text: str
    metric: str
    limit: float
    """Milliseconds for latencies, a fraction for ``errors``."""
    op: str | None = None


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    actual: float | None
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate.text, "metric": self.gate.metric, "op": self.gate.op,
                "limit": self.gate.limit, "actual": self.actual, "ok": self.ok}

    def describe(self) -> str:
        unit = "" if self.gate.metric == "errors" else " ms"
        shown = "n/a" if self.actual is None else (
            f"{self.actual:.4%}" if self.gate.metric == "errors" else f"{self.actual:.2f}{unit}")
        limit = (f"{self.gate.limit:.4%}" if self.gate.metric == "errors"
                 else f"{self.gate.limit:g}{unit}")
        return f"{'PASS' if self.ok else 'FAIL'}  {self.gate.text}: {shown} (limit {limit})"


def parse_gate(text: str) -> Gate:
    m = _GATE.match(text.strip())
    if m is None:
        raise SloError(f"bad SLO {text!r}: want e.g. p99=50ms or errors=0.1%")
    metric, value, op = m["metric"], m["value"].strip(), m["op"]
    if metric == "errors":
        return Gate(text, metric, _fraction(text, value), op)
    if metric in LATENCY_METRICS or metric == "lateness_p99":
        return Gate(text, metric, _millis(text, value), op)
    raise SloError(f"bad SLO {text!r}: unknown metric {metric!r}")


def _fraction(text: str, value: str) -> float:
    try:
        frac = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise SloError(f"bad SLO {text!r}: {value!r} is not a share") from None
    if not 0 <= frac <= 1:
        raise SloError(f"bad SLO {text!r}: a share is within 0..100%")
    return frac


def _millis(text: str, value: str) -> float:
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)?", value)
    if m is None:
        raise SloError(f"bad SLO {text!r}: {value!r} is not a duration like 50ms")
    return float(m[1]) * _UNITS[m[2] or "ms"]


def parse_gates(texts: Iterable[str]) -> list[Gate]:
    return [parse_gate(t) for t in texts]


def measured(summary: dict[str, Any], gate: Gate) -> float | None:
    """The value ``gate`` judges, from a report summary (None when nothing was measured)."""
    if gate.metric == "lateness_p99":
        late = summary["send_lateness_ms"].get("p99")
        return None if late is None else float(late)
    scope = summary if gate.op is None else summary["operations"].get(gate.op)
    if scope is None:
        return None
    if gate.metric == "errors":
        n = scope["requests"]
        return scope["errors"] / n if n else None
    value = scope["latency_ms"].get(gate.metric)
    return None if value is None else float(value)


def evaluate(summary: dict[str, Any], gates: Iterable[Gate]) -> list[Verdict]:
    """Each gate's verdict; a gate with nothing measured fails (no traffic is no pass)."""
    out = []
    for gate in gates:
        actual = measured(summary, gate)
        out.append(Verdict(gate, actual, actual is not None and actual <= gate.limit))
    return out


def exit_code(verdicts: Iterable[Verdict]) -> int:
    return 0 if all(v.ok for v in verdicts) else BREACH_EXIT_CODE
