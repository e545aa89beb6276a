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
from loadtests.slo import Verdict
from loadtests.stats import is_error, new_hist

PCTS = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9, "p9999": 99.99}
COLORS = {"p50": "#2b8a3e", "p99": "#e67700", "p999": "#c92a2a", "ok": "#1c7ed6",
          "errors": "#c92a2a"}


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
    """The JSON summary of a replay (what SLO gates and people read)."""
    s, meta = result.stats, result.meta
    by_code: Counter[str] = Counter()
    operations = {}
    for op in sorted(set(s.codes) | set(s.ops)):
        codes = s.codes.get(op, Counter())
        errors = sum(n for c, n in codes.items() if is_error(c))
        by_code.update({c: n for c, n in codes.items() if is_error(c)})
        hist = s.ops.get(op)
        operations[op] = {"requests": sum(codes.values()), "errors": errors,
                          "codes": dict(sorted(codes.items())),
                          "latency_ms": latency_ms(hist or new_hist(1))}
    duration = max(float(meta.get("elapsed_s") or 0.0), 1e-9)
    timeline = _timeline(result)
    peak = max((p["rate"] for p in timeline), default=0.0)
    shape = (meta.get("trace") or {}).get("shape") or {}
    return {
        "run_id": meta.get("run_id"), "base_url": meta.get("base_url"),
        "started_at": meta.get("started_at"), "elapsed_s": round(duration, 3),
        "partial": bool(meta.get("partial")), "failures": meta.get("failures", []),
        "shape": shape.get("name"), "shadow": meta.get("shadow"),
        "requests": s.completed, "sent": s.sent, "errors": s.errors, "skipped": s.skipped,
        "error_rate": round(s.errors / s.completed, 6) if s.completed else None,
        "throughput": {"mean_rps": round(s.completed / duration, 2), "peak_rps": round(peak, 2),
                       "bucket_s": s.bucket_s},
        "latency_ms": latency_ms(s.all), "send_lateness_ms": latency_ms(s.lateness),
        "errors_by_code": dict(by_code.most_common()), "operations": operations,
        "timeline": timeline,
    }


def _timeline(result: ReplayResult) -> list[dict[str, Any]]:
    s = result.stats
    if not s.buckets:
        return []
    points = []
    for i in range(max(s.buckets) + 1):
        b = s.buckets.get(i)
        lat = latency_ms(b.hist) if b is not None else {}
        points.append({"t": round(i * s.bucket_s, 3),
                       "rate": round((b.count if b else 0) / s.bucket_s, 3),
                       "errors": round((b.errors if b else 0) / s.bucket_s, 3),
                       "p50": lat.get("p50"), "p99": lat.get("p99"), "p999": lat.get("p999")})
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
    left, right, top, bottom = 64, 16, 16, 36
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
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{_fmt(t)}</text>')
    for k in range(6):
        x = x_max * k / 5
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + 16}" text-anchor="middle" '
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
        lx = left + 10 + i * 110
        out.append(f'<rect x="{lx}" y="{top + 6}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{top + 15}" font-size="11">{html.escape(name)}</text>')
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
.fail{color:#c92a2a;font-weight:600}.kv td{text-align:left}code{background:#f1f3f5;padding:0 3px}"""


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def render_html(summary: dict[str, Any], verdicts: list[Verdict] | None = None,
                t0: float | None = None) -> str:
    """The self-contained report page."""
    tl = summary["timeline"]
    lat = summary["latency_ms"]
    thr = line_chart([("requests/s", COLORS["ok"], [(p["t"], p["rate"]) for p in tl]),
                      ("errors/s", COLORS["errors"], [(p["t"], p["errors"]) for p in tl])],
                     "requests/s", marker=t0)
    lines = line_chart([(k, COLORS[k], [(p["t"], p[k]) for p in tl])
                        for k in ("p50", "p99", "p999")], "latency (ms, log)", log_y=True,
                       marker=t0)
    errors = bar_chart(list(summary["errors_by_code"].items())[:30], "", COLORS["errors"])
    ops = summary["operations"]
    op_rows = "".join(
        f"<tr><td><code>{html.escape(op)}</code></td><td>{o['requests']:,}</td>"
        f"<td>{o['errors']:,}</td><td>{_ms(o['latency_ms']['p50'])}</td>"
        f"<td>{_ms(o['latency_ms']['p99'])}</td><td>{_ms(o['latency_ms']['p999'])}</td>"
        f"<td>{_ms(o['latency_ms']['max'])}</td></tr>" for op, o in ops.items())
    op_bars = bar_chart([(op, o["latency_ms"]["p99"]) for op, o in ops.items()
                         if o["latency_ms"]["p99"] is not None], " ms", COLORS["p99"])
    gates = ""
    if verdicts:
        gates = "<h2>SLO gates</h2><table>" + "".join(
            f'<tr><td class="{"pass" if v.ok else "fail"}">{html.escape(v.describe())}</td></tr>'
            for v in verdicts) + "</table>"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(summary.get("started_at") or 0))
    err_rate = summary["error_rate"]
    facts = [
        ("target", summary["base_url"]), ("started", when), ("run id", summary["run_id"]),
        ("shape", summary.get("shape") or "recorded"), ("shadow", summary.get("shadow")),
        ("elapsed", f"{summary['elapsed_s']:.1f} s"),
        ("requests", f"{summary['requests']:,} ({summary['skipped']:,} skipped)"),
        ("errors", f"{summary['errors']:,} ({0 if err_rate is None else err_rate:.3%})"),
        ("throughput", f"mean {summary['throughput']['mean_rps']:,.1f}/s, peak "
                       f"{summary['throughput']['peak_rps']:,.1f}/s "
                       f"({summary['throughput']['bucket_s']:g} s buckets)"),
        ("latency", f"p50 {_ms(lat['p50'])} · p99 {_ms(lat['p99'])} · p999 {_ms(lat['p999'])}"
                    f" · max {_ms(lat['max'])} ms (from intended send time)"),
        ("send lateness", f"p50 {_ms(summary['send_lateness_ms']['p50'])} · p99 "
                          f"{_ms(summary['send_lateness_ms']['p99'])} ms"),
    ]
    if summary["partial"]:
        facts.append(("partial", "; ".join(summary["failures"])))
    kv = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                 for k, v in facts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>petbox load test {html.escape(
        str(summary['run_id']))}</title><style>{CSS}</style></head><body>
<h1>petbox load test</h1>
<table class="kv">{kv}</table>{gates}
<h2>Throughput over time</h2>{thr}
<h2>Latency over time (p50 / p99 / p999)</h2>{lines}
<h2>Errors by code</h2>{errors}
<h2>Latency per operation</h2>
<table><tr><th>operation</th><th>requests</th><th>errors</th><th>p50 ms</th><th>p99 ms</th>
<th>p999 ms</th><th>max ms</th></tr>{op_rows}</table>{op_bars}
</body></html>
"""


def t0_marker(result: ReplayResult) -> float | None:
    """Where midnight falls on the report's time axis (singles-day traces)."""
    shape = (result.meta.get("trace") or {}).get("shape") or {}
    t0 = shape.get("t0_s")
    return None if t0 is None else float(t0) / float(result.meta.get("speed") or 1.0)


def write_reports(result: ReplayResult, out_dir: Path | str,
                  verdicts: list[Verdict] | None = None,
                  summary: dict[str, Any] | None = None) -> dict[str, Path]:
    """``summary.json`` and ``report.html`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or summarize(result)
    if verdicts is not None:
        summary = {**summary, "slo": [v.to_json() for v in verdicts],
                   "slo_ok": all(v.ok for v in verdicts)}
    paths = {"summary": out / "summary.json", "html": out / "report.html"}
    paths["summary"].write_text(json.dumps(summary, indent=2))
    paths["html"].write_text(render_html(summary, verdicts, t0_marker(result)))
    return paths
