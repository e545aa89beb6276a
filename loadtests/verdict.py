"""The verdict of a run: can its numbers be trusted, did the target keep up, did it pass?

Checked in this order, the first that applies gives the exit code:

* **GENERATOR-BOUND** (exit 6): the load generator itself fell short, so the
  numbers describe the generator, not the target: send lateness p99 above
  ``max_lateness_ms``, requests never sent (``client_backlog``), or a generator
  process near a whole core of CPU (over a run of ``min_span_s`` or more). Fails
  the run unless allowed (``--allow-generator-bound``), and is reported even then.
  **The rule for a slow target**: lateness and backlog that come from waiting for a
  free connection are the target's doing when its own time (send to answer) has a
  p99 of ``slow_target_ms`` or more: every connection was held by an answer that
  was slow to come. Then they are saturation reasons, not the generator's; the
  scheduler's own lateness (without those waits) over ``max_lateness_ms`` and the
  CPU stay the generator's whatever the target did.
* **PARTIAL** (exit 4): a worker died or the hard deadline hit.
* **SATURATED** (exit 5): the target did not keep up with the offered load:
  answers per second (achieved) below ``min_achieved`` of requests due per
  second (offered), p99 growing over the run (the last third's p99 at least
  ``growth`` times the first third's, and above ``growth_floor_ms``), more than
  ``max_shed`` of the requests (the replay's logins included) shed (429/503 with
  ``Retry-After``), or the slow target above. Allowed with ``--allow-saturated``
  (a capacity search expects it).
* **FAIL** (exit 3): an SLO gate failed.
* **PASS** (exit 0): every gate passed. The CLI always judges gates: those given
  with ``--slo``, else the default ones (:data:`loadtests.slo.DEFAULT_SLO`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtests.slo import BREACH_EXIT_CODE, Verdict

PASS_EXIT_CODE = 0
PARTIAL_EXIT_CODE = 4
SATURATED_EXIT_CODE = 5
GENERATOR_BOUND_EXIT_CODE = 6


@dataclass(frozen=True)
class Limits:
    """Thresholds of the run-level verdicts."""

    max_lateness_ms: float = 50.0
    max_cpu_share: float = 0.9
    min_achieved: float = 0.85
    growth: float = 3.0
    growth_floor_ms: float = 100.0
    min_span_s: float = 2.0
    max_shed: float = 0.01
    """Share of requests the target may shed (429/503 with Retry-After) and still be
    said to keep up."""
    slow_target_ms: float = 1000.0
    """The target's own p99 from which waits for a connection are its doing."""
    allow_generator_bound: bool = False
    allow_saturated: bool = False


@dataclass
class RunVerdict:
    """Everything the run was found to be; ``word`` and ``exit_code`` sum it up."""

    generator_bound: list[str] = field(default_factory=list)
    saturated: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    gates: list[Verdict] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)

    @property
    def word(self) -> str:
        if self.generator_bound and not self.limits.allow_generator_bound:
            return "GENERATOR-BOUND"
        if self.partial:
            return "PARTIAL"
        if self.saturated and not self.limits.allow_saturated:
            return "SATURATED"
        if not all(g.ok for g in self.gates):
            return "FAIL"
        return "PASS"

    @property
    def exit_code(self) -> int:
        return {"GENERATOR-BOUND": GENERATOR_BOUND_EXIT_CODE, "PARTIAL": PARTIAL_EXIT_CODE,
                "SATURATED": SATURATED_EXIT_CODE, "FAIL": BREACH_EXIT_CODE}.get(self.word, 0)

    def line(self) -> str:
        """The one line a run ends with."""
        notes = [f"generator-bound: {'; '.join(self.generator_bound)}"] if \
            self.generator_bound else []
        notes += [f"saturated: {'; '.join(self.saturated)}"] if self.saturated else []
        notes += [f"partial: {'; '.join(self.partial)}"] if self.partial else []
        failed = [g.gate.text for g in self.gates if not g.ok]
        notes += [f"failed gates: {', '.join(failed)}"] if failed else []
        passed = sum(g.ok for g in self.gates)
        kind = "default gates" if any(g.gate.default for g in self.gates) else "gates"
        notes += [f"{passed}/{len(self.gates)} {kind} pass"] if self.gates else []
        return f"VERDICT {self.word}" + (f" ({'; '.join(notes)})" if notes else "")

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.word, "exit_code": self.exit_code,
                "generator_bound": self.generator_bound, "saturated": self.saturated,
                "partial": self.partial, "gates": [g.to_json() for g in self.gates],
                "allowed": {"generator_bound": self.limits.allow_generator_bound,
                            "saturated": self.limits.allow_saturated}}


def judge(summary: dict[str, Any], gates: list[Verdict], limits: Limits) -> RunVerdict:
    """The verdict of the run ``summary`` describes, with its gates already evaluated."""
    return RunVerdict(generator_bound=generator_reasons(summary, limits),
                      saturated=saturation_reasons(summary, limits),
                      partial=list(summary["failures"]) if summary["partial"] else [],
                      gates=gates, limits=limits)


def slow_target(summary: dict[str, Any], limits: Limits) -> float | None:
    """The target's own p99 (ms) when it is ``slow_target_ms`` or more, else None."""
    own = (summary.get("target_ms") or {}).get("p99")
    return own if own is not None and own >= limits.slow_target_ms else None


def _waits(summary: dict[str, Any], limits: Limits) -> list[str]:
    """What the generator fell short by for want of a free connection (send lateness
    beyond the scheduler's own, requests never sent)."""
    out = []
    late = summary["send_lateness_ms"]["p99"]
    own = (summary.get("scheduler_lateness_ms") or {}).get("p99")
    if late is not None and late > limits.max_lateness_ms and (
            own is None or own <= limits.max_lateness_ms):
        out.append(f"send lateness p99 {late:.1f} ms > {limits.max_lateness_ms:g} ms")
    backlog = summary["classes"].get("backlog", 0)
    if backlog:
        out.append(f"{backlog:,} requests never sent (client_backlog)")
    return out


def generator_reasons(summary: dict[str, Any], limits: Limits) -> list[str]:
    out = []
    own = (summary.get("scheduler_lateness_ms") or {}).get("p99")
    if own is not None and own > limits.max_lateness_ms:
        out.append(f"send lateness p99 {summary['send_lateness_ms']['p99']:.1f} ms > "
                   f"{limits.max_lateness_ms:g} ms (without waits for a connection: "
                   f"{own:.1f} ms)")
    waits = _waits(summary, limits)
    if waits and slow_target(summary, limits) is None:
        out += waits
    cpu, wall = summary["generator"]["cpu_max_share"], summary["generator"].get("wall_s", 0.0)
    if cpu >= limits.max_cpu_share and wall >= limits.min_span_s:  # start-up dominates less
        out.append(f"a generator process used {cpu:.0%} of a core")
    return out


def saturation_reasons(summary: dict[str, Any], limits: Limits) -> list[str]:
    out = []
    offered, achieved = summary["offered"], summary["achieved"]
    if offered["span_s"] >= limits.min_span_s and offered["rps"] and achieved["rps"] is not None:
        ratio = achieved["rps"] / offered["rps"]
        if ratio < limits.min_achieved:
            out.append(f"achieved {achieved['rps']:,.1f}/s of {offered['rps']:,.1f}/s offered "
                       f"({ratio:.0%})")
    n = int(summary.get("requests") or 0)
    shed = int(summary["classes"].get("shed", 0))
    logins = summary.get("logins") or {}
    n += int(logins.get("requests") or 0)
    shed += int((logins.get("classes") or {}).get("shed", 0))
    if n and shed / n > limits.max_shed:
        out.append(f"shed {shed:,} of {n:,} requests ({shed / n:.1%}; 429/503 with "
                   f"Retry-After) > {limits.max_shed:.1%}")
    waits = _waits(summary, limits)
    slow = slow_target(summary, limits)
    if waits and slow is not None:
        out.append(f"{'; '.join(waits)}: every connection held by a slow target (its own "
                   f"p99 {slow:,.1f} ms >= {limits.slow_target_ms:g} ms)")
    thirds = p99_thirds(summary["timeline"])
    if thirds is not None:
        first, last = thirds
        if last >= limits.growth_floor_ms and last >= limits.growth * first:
            out.append(f"p99 grew from {first:,.1f} ms (first third) to {last:,.1f} ms "
                       "(last third)")
    return out


def p99_thirds(timeline: list[dict[str, Any]]) -> tuple[float, float] | None:
    """Median of the per-bucket p99 in the first and the last third of the run."""
    points = [p["p99"] for p in timeline if p.get("p99") is not None]
    if len(points) < 6:
        return None
    third = len(points) // 3
    first, last = sorted(points[:third]), sorted(points[-third:])
    return first[len(first) // 2], last[len(last) // 2]
