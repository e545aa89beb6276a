"""Reports of a replay: a JSON summary and a self-contained HTML page.

The HTML has no scripts and no external resources: charts are inline SVG
(throughput and p50/p99/p999 over time, errors by code, latency per
operation), so the file can be attached to a release checklist or a CI run.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtests.replay import ReplayResult
from loadtests.stats import CLASSES, FAILURE_CLASSES, Bucket, classify, is_error, new_hist
from loadtests.verdict import RunVerdict

PCTS = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9, "p9999": 99.99}
COLORS = {"p50": "#2b8a3e", "p99": "#e67700", "p999": "#c92a2a", "ok": "#1c7ed6",
          "errors": "#c92a2a", "offered": "#868e96", "achieved": "#1c7ed6",
          "refusals": "#e67700", "failures": "#c92a2a", "lateness_p99": "#5f3dc4",
          "inflight": "#1c7ed6"}


def latency_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """Percentiles, max and mean of a µs histogram, in milliseconds."""
    if hist.get_total_count() == 0:
        return {**{k: None for k in PCTS}, "max": None, "mean": None}
    out: dict[str, float | None] = {
        k: round(hist.get_value_at_percentile(p) / 1000, 3) for k, p in PCTS.items()}
    out["max"] = round(hist.get_max_value() / 1000, 3)
    out["mean"] = round(hist.get_mean_value() / 1000, 3)
    return out


def summarize(result: ReplayResult) -> dict[str, Any]:
    """The JSON summary of a replay (what verdicts, SLO gates, CI and people read)."""
    s, meta = result.stats, result.meta
    all_codes: Counter[str] = Counter()
    operations = {}
    for op in sorted(set(s.codes) | set(s.ops)):
        codes = s.codes.get(op, Counter())
        all_codes.update(codes)
        hist = s.ops.get(op)
        errors = sum(n for c, n in codes.items() if is_error(c))
        operations[op] = {"requests": sum(codes.values()), "errors": errors,
                          "unexpected": errors - s.expected.get(op, 0),
                          "codes": dict(sorted(codes.items())), "classes": _classes(codes),
                          "latency_ms": latency_ms(hist or new_hist(1))}
    duration = max(float(meta.get("elapsed_s") or 0.0), 1e-9)
    timeline = _timeline(result)
    peak = max((p["achieved"] for p in timeline), default=0.0)
    shape = (meta.get("trace") or {}).get("shape") or {}
    by_code = Counter({c: n for c, n in all_codes.items() if is_error(c)})
    return {
        "run_id": meta.get("run_id"), "base_url": meta.get("base_url"),
        "started_at": meta.get("started_at"), "elapsed_s": round(duration, 3),
        "partial": bool(meta.get("partial")), "failures": meta.get("failures", []),
        "shape": shape.get("name"), "shadow": meta.get("shadow"),
        "speed": meta.get("speed"), "clones": meta.get("clones", 1),
        "merged_from": meta.get("merged_from"),
        "requests": s.completed, "sent": s.sent, "errors": s.errors, "skipped": s.skipped,
        "error_rate": round(s.errors / s.completed, 6) if s.completed else None,
        "unexpected": s.errors - sum(s.expected.values()),
        "expected_refusals": sum(s.expected.values()),
        "codes": dict(sorted(all_codes.items())), "classes": _classes(all_codes),
        "offered": _offered(result), "achieved": _achieved(result),
        "throughput": {"mean_rps": round(s.answered / duration, 2), "peak_rps": round(peak, 2),
                       "bucket_s": s.bucket_s},
        "latency_ms": latency_ms(s.all), "send_lateness_ms": latency_ms(s.lateness),
        "behind_schedule_ms": latency_ms(s.behind),
        "scheduler_lateness_ms": latency_ms(s.own_lateness),
        "target_ms": latency_ms(s.target),
        "generator": {"cpu_s": round(s.cpu_s, 3), "cpu_max_share": round(s.cpu_max_share, 3),
                      "wall_s": round(s.wall_s, 3),
                      "workers": meta.get("workers")},
        "errors_by_code": dict(by_code.most_common()),
        "refusals_by_code": {c: n for c, n in by_code.most_common()
                             if classify(c) == "refusal"},
        "shed_by_code": {c: n for c, n in by_code.most_common() if classify(c) == "shed"},
        "failures_by_code": {c: n for c, n in by_code.most_common()
                             if classify(c) in FAILURE_CLASSES},
        "logins": _logins(s),
        "operations": operations, "timeline": timeline,
    }


def _logins(s: Any) -> dict[str, Any]:
    """The sessions the replay opened on its own (a player's first request that needs a
    token): apart from the trace's requests, rates and latencies."""
    return {"requests": sum(s.logins.values()),
            "errors": sum(n for c, n in s.logins.items() if is_error(c)),
            "codes": dict(sorted(s.logins.items())),
            "classes": _classes(s.logins), "latency_ms": latency_ms(s.login_hist),
            "requests_not_sent": s.no_session}


def _classes(codes: Counter[str]) -> dict[str, int]:
    out = dict.fromkeys(CLASSES, 0)
    for code, n in codes.items():
        out[classify(code)] += n
    return out


def _offered(result: ReplayResult) -> dict[str, Any]:
    s = result.stats
    total = sum(b.offered for b in s.buckets.values())
    first = s.first_due_s or 0.0
    # The trace's span, or longer when real-time holds made requests due after it.
    span = max(0.0, max(float(result.meta.get("span_s") or 0.0), s.last_due_s) - first)
    return {"requests": total, "span_s": round(span, 3),
            "rps": round(total / span, 2) if span > 0 else None}


def _achieved(result: ReplayResult) -> dict[str, Any]:
    s = result.stats
    # Over the offered span at least: a target that stopped answering part-way must not
    # look faster than the load it was offered (answers over its last answer's time).
    end = max(s.last_done_s, float(result.meta.get("span_s") or 0.0), s.last_due_s)
    span = max(0.0, end - (s.first_due_s or 0.0))
    return {"answered": s.answered, "span_s": round(span, 3),
            "rps": round(s.answered / span, 2) if span > 0 else None}


def _timeline(result: ReplayResult) -> list[dict[str, Any]]:
    s = result.stats
    if not s.buckets:
        return []
    points = []
    w = s.bucket_s
    for i in range(max(s.buckets) + 1):
        b = s.buckets.get(i) or Bucket()
        lat = latency_ms(b.hist)
        refusals = sum(n for c, n in b.codes.items() if classify(c) in ("refusal", "shed"))
        points.append({"t": round(i * w, 3), "offered": round(b.offered / w, 3),
                       "achieved": round(b.achieved / w, 3), "rate": round(b.count / w, 3),
                       "errors": round(b.errors / w, 3), "refusals": round(refusals / w, 3),
                       "failures": round((b.errors - refusals) / w, 3),
                       "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"],
                       "lateness_p99": latency_ms(b.lateness)["p99"],
                       "inflight": b.inflight_max, "codes": dict(b.codes.most_common())})
    return points


# -- SVG --------------------------------------------------------------------------------------


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = math.pow(10.0, math.floor(math.log10(v)))
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * mag:
            return float(step * mag)
    return 10.0 * mag


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:g}" if v >= 1 else f"{v:.2g}"


def line_chart(series: list[tuple[str, str, list[tuple[float, float | None]]]], y_label: str,
               log_y: bool = False, marker: float | None = None, width: int = 860,
               height: int = 260) -> str:
    """An SVG line chart; ``None`` values break the line."""
    left, right, top, bottom = 72, 24, 16, 48
    pw, ph = width - left - right, height - top - bottom
    xs = [x for _, _, pts in series for x, _ in pts]
    ys = [y for _, _, pts in series for _, y in pts if y is not None and (y > 0 or not log_y)]
    x_max = max(xs, default=1.0) or 1.0
    if log_y:
        lo = 10 ** math.floor(math.log10(min(ys))) if ys else 0.1
        hi = 10 ** math.ceil(math.log10(max(ys))) if ys else 10.0
        hi = hi if hi > lo else lo * 10

        def sy(y: float) -> float:
            return top + ph - (math.log10(max(y, lo)) - math.log10(lo)) / (
                math.log10(hi) - math.log10(lo)) * ph
        ticks = [lo * 10 ** k for k in range(round(math.log10(hi / lo)) + 1)]
    else:
        hi = _nice_max(max(ys, default=1.0))

        def sy(y: float) -> float:
            return top + ph - y / hi * ph
        ticks = [hi * k / 4 for k in range(5)]

    def sx(x: float) -> float:
        return left + x / x_max * pw

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(y_label)}">']
    for t in ticks:
        y = sy(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   'stroke="#e9ecef"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{_fmt(t)}</text>')
    for k in range(6):  # the first starts at the axis: clear of the y labels
        x = x_max * k / 5
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + 18}" text-anchor="{anchor}" '
                   f'font-size="11">{_fmt(x)} s</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.0f}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.0f})">{html.escape(y_label)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#adb5bd"/>')
    if marker is not None and 0 <= marker <= x_max:
        out.append(f'<line x1="{sx(marker):.1f}" y1="{top}" x2="{sx(marker):.1f}" '
                   f'y2="{top + ph}" stroke="#868e96" stroke-dasharray="4 3"/>'
                   f'<text x="{sx(marker) + 4:.1f}" y="{top + 12}" font-size="11" '
                   'fill="#495057">T0</text>')
    for i, (name, color, pts) in enumerate(series):
        for run in _runs(pts, log_y):
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in run)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                       f'points="{path}"/>')
        # The legend sits under the axis, each entry as wide as its text: no overlaps.
        lx = left + sum(24 + 7 * len(n) for n, _, _ in series[:i])
        ly = top + ph + 28
        out.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{ly + 9}" font-size="11">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _runs(pts: list[tuple[float, float | None]], log_y: bool) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in pts:
        if y is None or (log_y and y <= 0):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def bar_chart(rows: list[tuple[str, float]], unit: str, color: str, width: int = 860) -> str:
    """Horizontal SVG bars, one per (label, value)."""
    if not rows:
        return "<p>none</p>"
    row_h, label_w = 22, 260
    height = row_h * len(rows) + 8
    top = max(v for _, v in rows) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        w = (width - label_w - 120) * value / top
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
                   f'{html.escape(label)}</text><rect x="{label_w}" y="{y + 3}" '
                   f'width="{max(w, 1):.1f}" height="{row_h - 6}" fill="{color}"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12">'
                   f'{_fmt(value)}{unit}</text>')
    out.append("</svg>")
    return "".join(out)


# -- HTML -------------------------------------------------------------------------------------

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:900px;color:#212529}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #e9ecef;
text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#2b8a3e}
.fail{color:#c92a2a;font-weight:600}
.verdict{font-size:18px;padding:8px;border:1px solid}.kv td{text-align:left}
code{background:#f1f3f5;padding:0 3px}"""


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def render_html(summary: dict[str, Any], run: RunVerdict | None = None,
                t0: float | None = None) -> str:
    """The self-contained report page: the verdict first, then the charts and tables."""
    tl = summary["timeline"]

    def series(name: str, key: str) -> tuple[str, str, list[tuple[float, float | None]]]:
        return (name, COLORS[key], [(p["t"], p[key]) for p in tl])

    charts = [
        ("Offered vs achieved (requests/s)", line_chart(
            [series("offered/s", "offered"), series("achieved/s", "achieved")],
            "requests/s", marker=t0)),
        ("Refusals and failures over time (requests/s, by intended time)", line_chart(
            [series("refusals/s (4xx, and 429/503 shed with Retry-After)", "refusals"),
             series("failures/s (5xx, timeouts, transport, backlog)", "failures")],
            "requests/s", marker=t0)),
        ("Latency over time (ms, log scale)", line_chart(
            [series(k, k) for k in ("p50", "p99", "p999")], "latency ms", log_y=True,
            marker=t0)),
        ("Send lateness p99 over time (ms, log scale)", line_chart(
            [series("lateness p99", "lateness_p99")], "lateness ms", log_y=True, marker=t0)),
        ("Requests in flight (peak per bucket)", line_chart(
            [series("in flight", "inflight")], "requests", marker=t0)),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{svg}" for title, svg in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>petbox load test {html.escape(
        str(summary['run_id']))}</title><style>{CSS}</style></head><body>
<h1>petbox load test</h1>{_verdict_html(run)}
<table class="kv">{_facts(summary)}</table>{body}
<h2>Errors by code over time</h2>{_codes_over_time(tl)}
<h2>Refusals by code (the server said no)</h2>{_code_bars(summary["refusals_by_code"])}
<h2>Shed by code (429/503 with Retry-After)</h2>{_code_bars(summary["shed_by_code"])}
<h2>Failures by code</h2>{_code_bars(summary["failures_by_code"])}
<h2>Per operation</h2>{_op_table(summary["operations"])}
</body></html>
"""


def _verdict_html(run: RunVerdict | None) -> str:
    if run is None:
        return ""
    cls = "pass" if run.word == "PASS" else "fail"
    gates = "".join(f'<tr><td class="{"pass" if v.ok else "fail"}">{html.escape(v.describe())}'
                    "</td></tr>" for v in run.gates)
    return (f'<p class="verdict {cls}">{html.escape(run.line())}</p>'
            + (f"<table>{gates}</table>" if gates else ""))


def _facts(summary: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(summary.get("started_at") or 0))
    lat, late = summary["latency_ms"], summary["send_lateness_ms"]
    off, ach, cls = summary["offered"], summary["achieved"], summary["classes"]
    facts = [
        ("target", summary["base_url"]), ("started", when), ("run id", summary["run_id"]),
        ("shape", summary.get("shape") or "recorded"),
        ("data", "shadow (load test)" if summary.get("shadow") else "REAL"),
        ("speed · clones", f"{summary.get('speed')} · {summary.get('clones')}"),
        ("elapsed", f"{summary['elapsed_s']:.1f} s"),
        ("offered", f"{off['requests']:,} requests, {off['rps'] or 0:,.1f}/s over "
                    f"{off['span_s']:,.1f} s"),
        ("achieved", f"{ach['answered']:,} answered, {ach['rps'] or 0:,.1f}/s over "
                     f"{ach['span_s']:,.1f} s"),
        ("outcomes", ", ".join(f"{k} {v:,}" for k, v in cls.items())),
        ("latency", f"p50 {_ms(lat['p50'])} · p99 {_ms(lat['p99'])} · p999 {_ms(lat['p999'])}"
                    f" · max {_ms(lat['max'])} ms"),
        ("send lateness", f"p50 {_ms(late['p50'])} · p99 {_ms(late['p99'])} ms (without "
                          "waits for a free connection: p99 "
                          f"{_ms(summary['scheduler_lateness_ms']['p99'])} ms)"),
        ("target's own time", f"p50 {_ms(summary['target_ms']['p50'])} · p99 "
                              f"{_ms(summary['target_ms']['p99'])} ms (send to answer)"),
        ("behind schedule", f"p99 {_ms(summary['behind_schedule_ms']['p99'])} ms"),
        ("logins by the replay", login_line(summary)),
        ("generator CPU", f"{summary['generator']['cpu_max_share']:.0%} of a core (busiest)"),
    ]
    if summary["partial"]:
        facts.append(("partial", "; ".join(summary["failures"])))
    return "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts)


def login_line(summary: dict[str, Any]) -> str:
    """The logins the replay made on its own, in one line (not in the figures above)."""
    logins = summary.get("logins") or {}
    n = int(logins.get("requests") or 0)
    if not n:
        return "none"
    lat = logins["latency_ms"]
    failed = {c: k for c, k in logins["classes"].items() if k and c != "ok"}
    line = (f"{n:,} (not in the requests, rates or latencies above), p50 {_ms(lat['p50'])}"
            f" · p99 {_ms(lat['p99'])} ms")
    if failed:
        line += "; not ok: " + ", ".join(f"{c} {k:,}" for c, k in failed.items())
    if logins.get("requests_not_sent"):
        line += f"; {logins['requests_not_sent']:,} requests not sent for want of a session"
    return line


def _codes_over_time(timeline: list[dict[str, Any]]) -> str:
    codes: Counter[str] = Counter()
    for p in timeline:
        codes.update(p["codes"])
    top = [c for c, _ in codes.most_common(6)]
    if not top:
        return "<p>none</p>"
    palette = ("#c92a2a", "#e67700", "#5f3dc4", "#1c7ed6", "#2b8a3e", "#495057")
    return line_chart([(c, palette[i], [(p["t"], p["codes"].get(c, 0)) for p in timeline])
                       for i, c in enumerate(top)], "requests per bucket")


def _code_bars(codes: dict[str, int]) -> str:
    return bar_chart([(c, float(n)) for c, n in list(codes.items())[:30]], "", COLORS["errors"])


def _op_table(ops: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(op)}</code></td><td>{o['requests']:,}</td>"
        f"<td>{o['classes']['refusal']:,}</td>"
        f"<td>{o['classes']['shed']:,}</td>"
        f"<td>{o['errors'] - o['classes']['refusal'] - o['classes']['shed']:,}</td>"
        f"<td>{_ms(o['latency_ms']['p50'])}</td><td>{_ms(o['latency_ms']['p99'])}</td>"
        f"<td>{_ms(o['latency_ms']['p999'])}</td><td>{_ms(o['latency_ms']['max'])}</td></tr>"
        for op, o in ops.items())
    return ("<table><tr><th>operation</th><th>requests</th><th>refusals</th><th>shed</th>"
            "<th>failures</th>"
            "<th>p50 ms</th><th>p99 ms</th><th>p999 ms</th><th>max ms</th></tr>"
            f"{rows}</table>")


def t0_marker(result: ReplayResult) -> float | None:
    """Where midnight falls on the report's time axis (singles-day traces)."""
    shape = (result.meta.get("trace") or {}).get("shape") or {}
    t0 = shape.get("t0_s")
    return None if t0 is None else float(t0) / float(result.meta.get("speed") or 1.0)


def write_reports(result: ReplayResult, out_dir: Path | str, run: RunVerdict | None = None,
                  summary: dict[str, Any] | None = None) -> dict[str, Path]:
    """``summary.json`` (the verdict first) and ``report.html`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or summarize(result)
    if run is not None:
        summary = {**run.to_json(), "slo": [v.to_json() for v in run.gates],
                   "slo_ok": all(v.ok for v in run.gates), **summary}
    paths = {"summary": out / "summary.json", "html": out / "report.html"}
    paths["summary"].write_text(json.dumps(summary, indent=2))
    paths["html"].write_text(render_html(summary, run, t0_marker(result)))
    return paths
