"""report.html in a real headless Chromium: the verdict comes first, no chart label is
clipped by its chart, no two labels of a chart overlap (legends, ticks, axis titles).

Skips only when /usr/bin/chromium or the ``playwright`` package is missing (``.ci/run``
installs both). Set ``PETBOX_REPORT_SCREENSHOTS=<dir>`` to keep the screenshot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from loadtests.replay import ReplayConfig, replay
from loadtests.report import summarize, write_reports
from loadtests.slo import evaluate, parse_gate
from loadtests.trace import Header, Record, write_trace
from loadtests.verdict import Limits, judge
from tests.loadtests.conftest import BareServer

CHROMIUM = Path("/usr/bin/chromium")

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - CI installs it (pyproject test extra)
    async_playwright = None

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at "
                       "/usr/bin/chromium (apt-get install -y chromium; .ci/run does it)"),
    pytest.mark.skipif(async_playwright is None, reason="needs Playwright for Python"),
]

GEOMETRY = """() => [...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  return {left: box.left, right: box.right, top: box.top, bottom: box.bottom, texts};
})"""


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5
            and a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5)


async def test_report_charts_in_a_real_browser(bare_server: BareServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.pbt"  # getPlayer answers; checkIn is a 404 refusal on this server
    write_trace(trace, Header.new(defaults={"game": "g"}), (
        Record(i * 10, f"p{i % 60}", "getPlayer" if i % 4 else "checkIn", None if i % 4 else {})
        for i in range(400)))
    result = replay(ReplayConfig(traces=(str(trace),), base_url=bare_server.base,
                                 merchant="loadshop", signing_secret="s", workers=1))
    summary = summarize(result)
    run = judge(summary, evaluate(summary, [parse_gate("p99=1s"), parse_gate("refusals=0")]),
                Limits(max_lateness_ms=250))
    paths = write_reports(result, tmp_path / "out", run, summary)
    assert async_playwright is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                           args=["--no-sandbox", "--disable-gpu"])
        page = await browser.new_page(viewport={"width": 1000, "height": 800})
        await page.goto(paths["html"].resolve().as_uri())
        charts = await page.evaluate(GEOMETRY)
        verdict_top = await page.evaluate(
            "() => document.querySelector('.verdict').getBoundingClientRect().top")
        shots = os.environ.get("PETBOX_REPORT_SCREENSHOTS") or str(tmp_path)
        await page.screenshot(path=str(Path(shots) / "report.png"), full_page=True)
        await browser.close()
    assert verdict_top < min(c["top"] for c in charts)
    assert len(charts) == 7  # 5 over time, errors by code over time, refusals by code
    for chart in charts:
        texts = [t for t in chart["texts"] if t["text"].strip()]
        for t in texts:  # nothing clipped by the chart's own box
            assert chart["left"] <= t["left"] and t["right"] <= chart["right"] + 0.5, t
            assert chart["top"] <= t["top"] and t["bottom"] <= chart["bottom"] + 0.5, t
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                assert not _overlap(a, b), (a, b)
