"""SLO gates: parsing, judging a summary, and the CLI's exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.slo import BREACH_EXIT_CODE, SloError, evaluate, exit_code, parse_gate


@pytest.mark.parametrize(("text", "metric", "limit", "op"), [
    ("p99=50ms", "p99", 50.0, None),
    ("p999 = 0.2s", "p999", 200.0, None),
    ("p50=750us", "p50", 0.75, None),
    ("max=3", "max", 3.0, None),
    ("errors=0.1%", "errors", 0.001, None),
    ("errors=0.02", "errors", 0.02, None),
    ("feedPet:p99<=80ms", "p99", 80.0, "feedPet"),
    ("lateness_p99=5ms", "lateness_p99", 5.0, None),
])
def test_parse(text: str, metric: str, limit: float, op: str | None) -> None:
    gate = parse_gate(text)
    assert (gate.metric, gate.limit, gate.op) == (metric, pytest.approx(limit), op)


@pytest.mark.parametrize("text", ["p99", "p98=5ms", "errors=120%", "p99=fast", "=5ms"])
def test_bad_gates_are_refused(text: str) -> None:
    with pytest.raises(SloError):
        parse_gate(text)


SUMMARY: dict[str, Any] = {
    "requests": 1000, "errors": 2,
    "latency_ms": {"p50": 3.0, "p99": 40.0, "p999": 90.0, "max": 120.0},
    "send_lateness_ms": {"p99": 1.5},
    "operations": {
        "feedPet": {"requests": 500, "errors": 2, "latency_ms": {"p99": 60.0}},
        "getPlayer": {"requests": 500, "errors": 0, "latency_ms": {"p99": 20.0}},
    },
}


def test_evaluate_and_exit_code() -> None:
    ok = evaluate(SUMMARY, [parse_gate(g) for g in (
        "p99=50ms", "errors=0.2%", "getPlayer:errors=0%", "lateness_p99=5ms")])
    assert all(v.ok for v in ok) and exit_code(ok) == 0
    bad = evaluate(SUMMARY, [parse_gate(g) for g in ("p99=50ms", "feedPet:p99=50ms",
                                                     "errors=0.1%", "checkIn:p99=1s")])
    assert [v.ok for v in bad] == [True, False, False, False]  # unmeasured fails
    assert bad[1].actual == 60.0 and bad[2].actual == pytest.approx(0.002)
    assert bad[3].actual is None
    assert exit_code(bad) == BREACH_EXIT_CODE
    assert bad[1].describe().startswith("FAIL  feedPet:p99=50ms: 60.00 ms")


CLASSED: dict[str, Any] = {
    "requests": 1000, "errors": 30,
    "codes": {"200": 970, "409 cooldown": 12, "429 rate_limited": 8, "503 unavailable": 4,
              "timeout": 6},
    "classes": {"ok": 970, "refusal": 20, "5xx": 4, "timeout": 6, "transport": 0,
                "backlog": 0, "client": 0},
    "latency_ms": {}, "send_lateness_ms": {}, "operations": {},
}


@pytest.mark.parametrize(("text", "actual"), [
    ("5xx=0.4%", 0.004), ("timeouts=1%", 0.006), ("transport=0", 0.0), ("backlog=0", 0.0),
    ("refusals=2%", 0.02), ("refusals.429=1%", 0.008), ("refusals.cooldown=2%", 0.012),
    ("refusals.409=2%", 0.012), ("errors=3%", 0.03),
])
def test_each_kind_of_error_has_a_gate_of_its_own(text: str, actual: float) -> None:
    (verdict,) = evaluate(CLASSED, [parse_gate(text)])
    assert verdict.actual == pytest.approx(actual) and verdict.ok


def test_class_gates_fail_alone() -> None:
    verdicts = evaluate(CLASSED, [parse_gate(g) for g in ("5xx=0", "refusals=5%",
                                                           "refusals.429=0")])
    assert [v.ok for v in verdicts] == [False, True, False]


@pytest.mark.parametrize("text", ["nosuchOp:p99=1s", "feedPet:lateness_p99=5ms",
                                  "5xx.503=0", "refusals=200%"])
def test_more_bad_gates(text: str) -> None:
    with pytest.raises(SloError):
        parse_gate(text)
