/* petbox console, Plays tab: experiments (A/B tests). Lists the live config's
 * experiments with their arms and allocation, creates one (one override against the
 * control), reads per-arm results with their 95 % intervals as a chart, and stops an
 * experiment or ships an arm (diff first, then confirm). Method: docs/experiments.md. */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  const PATH = /^\$(\.[A-Za-z0-9_-]{1,64}){1,10}$/;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const METRICS = ["d1_retention", "d7_retention", "d30_retention", "w1_retention",
    "draws_per_shopper", "spend_per_shopper", "prize_cost_per_shopper",
    "orders_per_shopper", "gmv_per_shopper"];
  // ended: still "running" in the config, but its stop time passed
  const STATUS_NOTES = {
    ended: "Its stop time passed: every shopper is back on the live config and the " +
      "results are final. Starting a new experiment stops it.",
  };

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c);
    return el;
  }

  /* One row per arm: the interval as a bar, the estimate as a dot. */
  function intervalChart(rows) {
    const arms = Object.keys(rows).filter((a) => rows[a].interval);
    if (!arms.length) return null;
    let lo = Math.min(...arms.map((a) => rows[a].interval.low));
    let hi = Math.max(...arms.map((a) => rows[a].interval.high));
    if (hi - lo < 1e-9) {  // every interval is one point: show a little around it
      const pad = Math.abs(hi) * 0.1 || 0.5;
      lo -= pad;
      hi += pad;
    }
    const span = hi - lo;
    const width = 520, labelW = 90, rowH = 26, height = arms.length * rowH + 24;
    const x = (v) => labelW + ((v - lo) / span) * (width - labelW - 20);
    // fixed size (width/height attributes): the chart must not stretch with the card
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height,
      class: "exp-chart", role: "img", "aria-label": "95% intervals per arm" });
    arms.forEach((arm, i) => {
      const iv = rows[arm].interval, y = 10 + i * rowH;
      root.append(
        svg("text", { x: labelW - 8, y: y + 9, class: "axis", "text-anchor": "end",
          "font-size": 12 }, arm),
        svg("line", { x1: x(iv.low), x2: x(iv.high) + 0.5, y1: y + 5, y2: y + 5,
          class: "exp-interval", stroke: "#7fb8ad", "stroke-width": 8,
          "stroke-linecap": "round", "data-arm": arm }),
        svg("circle", { cx: x(iv.estimate), cy: y + 5, r: 5, fill: "#0f766e",
          class: "exp-estimate" }));
    });
    root.append(svg("text", { x: labelW, y: height - 4, class: "axis", "font-size": 11 },
      lo.toFixed(3)),
      svg("text", { x: width - 20, y: height - 4, class: "axis", "text-anchor": "end",
        "font-size": 11 }, hi.toFixed(3)));
    return root;
  }

  function fmt(v) {
    return v == null ? "—" : Number(v).toFixed(4);
  }

  function resultsView(ctx, res) {
    const { h, fmtInt } = ctx;
    const primary = res.primary.metric;
    const rows = res.metrics[primary];
    const srm = res.sample_ratio;
    return h("div", { class: "exp-results" },
      h("p", { class: "small" }, h("strong", {}, `Primary: ${primary}. `), res.primary.note),
      h("p", { class: "small exp-srm" }, srm
        ? `Sample ratio: χ² ${srm.chi2} (p ${srm.p})${srm.mismatch ? " — MISMATCH" : " — ok"}`
        : "Sample ratio: no one exposed yet"),
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Arm"), h("th", {}, "Exposed"),
          h("th", {}, "n"), h("th", {}, "Estimate"), h("th", {}, "95% interval"),
          h("th", {}, "vs control (p)"))),
        h("tbody", {}, Object.keys(rows).map((arm) => {
          const r = rows[arm], iv = r.interval, cmp = r.vs_control;
          return h("tr", { "data-arm": arm },
            h("td", {}, arm), h("td", { class: "num exp-exposed" }, fmtInt(res.exposed[arm])),
            h("td", { class: "num" }, fmtInt(r.n)),
            h("td", { class: "num" }, iv ? fmt(iv.estimate) : "—"),
            h("td", { class: "num" }, iv ? `${fmt(iv.low)} … ${fmt(iv.high)}` : "—"),
            h("td", { class: "num" }, cmp ? `${fmt(cmp.diff.estimate)} (${fmt(cmp.p)})` : "—"));
        }))),
      intervalChart(rows) || h("p", { class: "muted small" }, "No interval yet."));
  }

  async function shipFlow(ctx, id, exp, out) {
    const { h, api, gamePath } = ctx;
    const pick = h("select", { id: `exp-${id}-ship-arm` },
      Object.keys(exp.arms).map((a) => h("option", { value: a }, a)));
    const preview = async () => {
      const arm = pick.value;
      const body = await api("POST", gamePath(`/experiments/${id}/ship`), { arm });
      out.replaceChildren(h("p", { class: "small exp-diff" },
        `Shipping ${arm} publishes ${body.changes.length} change(s): `,
        body.changes.map((c) => `${c.path}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`)
          .join("; ")),
      h("button", { class: "btn primary", type: "button", id: `exp-${id}-ship-confirm`,
        onclick: () => run(ctx, out, async () => {
          const done = await api("POST", gamePath(`/experiments/${id}/ship`),
            { arm, confirm: true }, { idempotencyKey: ctx.newKey() });
          ctx.toast(`Arm ${arm} shipped as version ${done.published.version}.`);
          ctx.refresh();
        }) }, `Confirm: ship ${arm}`));
    };
    return [pick, h("button", { class: "btn", type: "button", id: `exp-${id}-ship`,
      onclick: () => run(ctx, out, preview) }, "Ship arm…")];
  }

  async function run(ctx, out, work) {
    try {
      await work();
    } catch (e) {
      out.replaceChildren(ctx.errorBox(e));
    }
  }

  async function card(ctx, exp) {
    const { h, api, gamePath } = ctx;
    const id = exp.experiment;
    const out = h("div", { class: "exp-out" });
    const arms = Object.entries(exp.arms).map(([a, v]) => `${a} ${v.percent}%`).join(" · ");
    const open = exp.status === "running" || exp.status === "draft";
    const actions = [h("button", { class: "btn", type: "button", id: `exp-${id}-results`,
      onclick: () => run(ctx, out, async () => {
        const res = await api("GET", gamePath(`/experiments/${id}/results`));
        out.replaceChildren(resultsView(ctx, res));
      }) }, "Results")];
    if (open) {
      actions.push(h("button", { class: "btn", type: "button", id: `exp-${id}-stop`,
        onclick: () => run(ctx, out, async () => {
          // One click must not end a test mid-campaign: stopped stays stopped.
          const ok = await ctx.confirm(`Stop experiment ${id}?`, h("p", {},
            "Every shopper goes back to the live config now (a new version is published). " +
            "A stopped experiment cannot run again: a new one would start afresh."), "Stop");
          if (!ok) return;
          await api("POST", gamePath(`/experiments/${id}/stop`), {},
            { idempotencyKey: ctx.newKey() });
          ctx.toast(`Experiment ${id} stopped.`);
          ctx.refresh();
        }) }, "Stop"));
    }
    if (exp.status !== "shipped") actions.push(...await shipFlow(ctx, id, exp, out));
    return h("div", { class: "card", id: `exp-${id}` },
      h("div", { class: "card-head" }, h("h3", {}, exp.name),
        h("span", { class: `badge ${exp.status} exp-status`,
          title: STATUS_NOTES[exp.status] }, exp.status),
        h("span", { class: "muted small" }, arms)),
      h("p", { class: "small" }, exp.hypothesis),
      h("div", { class: "form-row" }, ...actions), out);
  }

  function createForm(ctx, el) {
    const { h, api, gamePath, field } = ctx;
    const input = (id, attrs) => h("input", { id: `exp-new-${id}`, ...attrs });
    const f = {
      id: input("id", { placeholder: "cheaper-ten" }),
      name: input("name", { placeholder: "Cheaper 10-draw" }),
      hypothesis: input("hypothesis", { placeholder: "a cheaper 10-draw raises D7" }),
      path: input("path", { placeholder: "$.boxes.series.forest.price.amount" }),
      value: input("value", { placeholder: "40 (JSON)" }),
      percent: input("percent", { type: "number", value: "50", min: "1", max: "99" }),
      days: input("days", { type: "number", value: "14", min: "1" }),
      size: input("size", { type: "number", value: "1000", min: "10" }),
      metric: h("select", { id: "exp-new-metric" },
        METRICS.map((m) => h("option", { value: m }, m))),
    };
    const out = h("div", {});
    const create = async () => {
      const id = f.id.value.trim(), path = f.path.value.trim();
      if (!ID.test(id)) throw new Error("Experiment id: lower-case letters, digits, - and _.");
      if (!PATH.test(path)) throw new Error("Override path: a JSON path such as $.a.b.");
      let value;
      try { value = JSON.parse(f.value.value); } catch (e) {
        throw new Error("Override value must be JSON (a number, a string in quotes…).");
      }
      const pct = Math.max(1, Math.min(99, Number(f.percent.value) || 50));
      const now = Math.floor(Date.now() / 1000);
      const body = {
        name: f.name.value.trim() || id, hypothesis: f.hypothesis.value.trim() || id,
        status: "running", starts_at: now,
        stops_at: now + 86400 * Math.max(1, Number(f.days.value) || 14),
        arms: { control: { percent: 100 - pct }, treatment: { percent: pct,
          overrides: { [path]: value } } },
        metrics: { primary: f.metric.value, guardrails: [] },
        sample_size: Math.max(10, Number(f.size.value) || 1000),
      };
      await api("PUT", gamePath(`/experiments/${id}`), body, { idempotencyKey: ctx.newKey() });
      ctx.toast(`Experiment ${id} is running (a new version is live).`);
      ctx.refresh();
    };
    el.append(h("div", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, "Start an experiment")),
      h("p", { class: "muted small" }, "Arm “treatment” gets one override of the live " +
        "config; “control” keeps it. Fix the sample size now and read the result once, " +
        "when every arm has reached it: peeking and changing the split mid-flight break " +
        "the test."),
      h("div", { class: "form-row" }, field("Id", f.id), field("Name", f.name),
        field("Hypothesis", f.hypothesis)),
      h("div", { class: "form-row" }, field("Override path", f.path),
        field("Value", f.value), field("Treatment %", f.percent)),
      h("div", { class: "form-row" }, field("Primary metric", f.metric),
        field("Shoppers per arm", f.size), field("Run for days", f.days)),
      h("button", { class: "btn primary", type: "button", id: "exp-new-create",
        onclick: () => run(ctx, out, create) }, "Start experiment"), out));
  }

  window.PetboxConsole.registerPlay({
    name: "experiments",
    title: "Experiments",
    async render(el, ctx) {
      const live = await ctx.liveConfig();
      if (!live) {
        el.append(ctx.h("p", { class: "muted" }, "Publish a version first."));
        return;
      }
      const list = await ctx.api("GET", ctx.gamePath("/experiments"));
      for (const exp of list.experiments) el.append(await card(ctx, exp));
      if (!list.experiments.length) {
        el.append(ctx.h("p", { class: "muted" }, "No experiment yet."));
      }
      createForm(ctx, el);
    },
  });
})();
