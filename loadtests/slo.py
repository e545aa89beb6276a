"""SLO gates: ``--slo p99=50ms --slo errors=0.1%`` turn a replay into pass/fail.

A gate is ``[operationId:]metric=limit``:

* ``p50``, ``p90``, ``p99``, ``p999``, ``p9999``, ``max``, ``mean`` — latency
  from the intended send time, with a unit ``us``, ``ms`` (default) or ``s``;
* ``errors`` — the share of requests that did not succeed (anything but 2xx/3xx),
  as ``0.1%`` or ``0.001``; ``unexpected`` leaves out refusals a replayed
  recording also had then; each kind also has a gate of its own, so that
  realistic game refusals need not hide server failures:
  ``5xx`` (a 5xx that is not shed), ``timeouts``, ``transport`` (connection
  failures), ``backlog`` (never sent: the generator's fault), ``shed`` (429 or 503
  with ``Retry-After``: turned away by design), ``refusals`` (any other 4xx) and
  ``refusals.CODE`` (``refusals.429``, ``refusals.cooldown``: by status or by error
  code, shed or not);
* ``lateness_p99`` — the scheduler's own send-time error (a check on the
  load generator rather than on the server);
* ``behind_p99`` — how far players fell behind the trace's schedule.

With an ``operationId:`` prefix the gate applies to that operation only
(``feedPet:p99=80ms``). A gate passes when the measured value is at most the
limit. :data:`BREACH_EXIT_CODE` is what the CLI exits with when one fails.

A run given no gate is judged by :data:`DEFAULT_SLO` (:func:`gates_or_default`):
the server failed no shopper (shedding is judged by the run verdict, past
``--max-shed``: :mod:`loadtests.verdict`). A verdict with nothing to judge would say PASS of a
run whose every request failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from loadtests.ops import OPERATIONS

BREACH_EXIT_CODE = 3
_GATE = re.compile(r"^(?:(?P<op>[A-Za-z]+):)?(?P<metric>[a-z0-9_]+(?:\.[a-z0-9_]+)?)\s*"
                   r"(?:<=|=)\s*(?P<value>.+)$")
_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
LATENCY_METRICS = ("p50", "p90", "p99", "p999", "p9999", "max", "mean")
SHARE_METRICS = {"errors": None, "unexpected": None, "5xx": "5xx", "timeouts": "timeout",
                 "transport": "transport", "backlog": "backlog", "refusals": "refusal",
                 "shed": "shed"}
"""Share gates → the outcome class they count (None: every unsuccessful one)."""
RUN_METRICS = ("lateness_p99", "behind_p99")
DEFAULT_SLO = ("5xx=0", "timeouts=0", "transport=0")
"""The gates of a run given none: no server error, timeout or connection failure.
Refusals (4xx) are left out: a game refuses by design (sold out, cooldowns)."""


class SloError(ValueError):
    """A gate that cannot be parsed."""


@dataclass(frozen=True)
class Gate:
    """One limit: ``metric`` (of ``op``, or of everything) at most ``limit``."""

    text: str
    metric: str
    limit: float
    """Milliseconds for latencies, a fraction for shares."""
    op: str | None = None
    default: bool = False
    """One of :data:`DEFAULT_SLO`, judged because no gate was given."""

    @property
    def is_share(self) -> bool:
        return self.metric.split(".", 1)[0] in SHARE_METRICS


@dataclass(frozen=True)
class Verdict:
    gate: Gate
    actual: float | None
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate.text, "metric": self.gate.metric, "op": self.gate.op,
                "limit": self.gate.limit, "actual": self.actual, "ok": self.ok,
                "default": self.gate.default}

    def describe(self) -> str:
        share = self.gate.is_share
        shown = "n/a" if self.actual is None else (
            f"{self.actual:.4%}" if share else f"{self.actual:.2f} ms")
        limit = f"{self.gate.limit:.4%}" if share else f"{self.gate.limit:g} ms"
        default = ", default" if self.gate.default else ""
        return (f"{'PASS' if self.ok else 'FAIL'}  {self.gate.text}: {shown} "
                f"(limit {limit}{default})")


def parse_gate(text: str) -> Gate:
    m = _GATE.match(text.strip())
    if m is None:
        raise SloError(f"bad SLO {text!r}: want e.g. p99=50ms or errors=0.1%")
    metric, value, op = m["metric"], m["value"].strip(), m["op"]
    if op is not None and op not in OPERATIONS:
        raise SloError(f"bad SLO {text!r}: unknown operation {op!r}; known: "
                       f"{', '.join(OPERATIONS)}")
    base, _, code = metric.partition(".")
    if base in SHARE_METRICS and (not code or base == "refusals"):
        return Gate(text, metric, _fraction(text, value), op)
    if metric in LATENCY_METRICS or (metric in RUN_METRICS and op is None):
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


def gates_or_default(texts: Iterable[str]) -> list[Gate]:
    """The gates ``texts`` give, or :data:`DEFAULT_SLO` (marked default) if none."""
    gates = parse_gates(texts)
    return gates or [replace(parse_gate(t), default=True) for t in DEFAULT_SLO]


def measured(summary: dict[str, Any], gate: Gate) -> float | None:
    """The value ``gate`` judges, from a report summary (None when nothing was measured)."""
    if gate.metric in RUN_METRICS:
        key = "send_lateness_ms" if gate.metric == "lateness_p99" else "behind_schedule_ms"
        late = summary[key].get("p99")
        return None if late is None else float(late)
    scope = summary if gate.op is None else summary["operations"].get(gate.op)
    if scope is None:
        return None
    if gate.is_share:
        n, count = scope["requests"], _count(scope, gate.metric)
        logins = summary.get("logins") if gate.op is None else None
        if logins and gate.metric != "unexpected":
            # A whole-run share counts the logins the replay made too: a login the
            # server failed is a failure, even though it is not one of the trace's.
            n += logins["requests"]
            count += _count(logins, gate.metric)
        return count / n if n else None
    value = scope["latency_ms"].get(gate.metric)
    return None if value is None else float(value)


def _count(scope: dict[str, Any], metric: str) -> int:
    base, _, code = metric.partition(".")
    if base == "errors":
        return int(scope["errors"])
    if base == "unexpected":
        return int(scope["unexpected"])
    if code:  # refusals.409 or refusals.cooldown
        return sum(n for c, n in scope["codes"].items() if c[:1] == "4" and code in c.split())
    return int(scope["classes"].get(SHARE_METRICS[base], 0))


def evaluate(summary: dict[str, Any], gates: Iterable[Gate]) -> list[Verdict]:
    """Each gate's verdict; a gate with nothing measured fails (no traffic is no pass)."""
    out = []
    for gate in gates:
        actual = measured(summary, gate)
        out.append(Verdict(gate, actual, actual is not None and actual <= gate.limit))
    return out


def exit_code(verdicts: Iterable[Verdict]) -> int:
    return 0 if all(v.ok for v in verdicts) else BREACH_EXIT_CODE
