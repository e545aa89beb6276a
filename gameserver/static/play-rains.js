/* petbox console, Plays tab: red-envelope rain (红包雨). Each published rain's rounds
 * from the public getEnvelopeRain (status, envelopes and pool left, what was granted and
 * returned, the seed hash and the seed once revealed), and a simulation of a round
 * (simulateEnvelopeRain: envelope sizes, expected cost per shopper). */
"use strict";

(() => {
  function roundsTable(ctx, view) {
    const { h, fmtInt, fmtFen, fmtTime } = ctx;
    return h("table", { class: "table rain-rounds" },
      h("thead", {}, h("tr", {}, ["Round", "Status", "Starts", "Pool", "Envelopes left",
        "Granted", "Returned", "Seed"].map((t) => h("th", {}, t)))),
      h("tbody", {}, view.rounds.map((r) => h("tr", { "data-round": r.round },
        h("td", {}, r.round),
        h("td", {}, h("span", { class: `badge ${r.status}` }, r.status)),
        h("td", {}, fmtTime(r.starts_at), ` · ${r.ends_at - r.starts_at} s`),
        h("td", { class: "num" }, fmtFen(r.pool_fen), ` / ${fmtInt(r.envelopes)}`),
        h("td", { class: "num envelopes-left" }, fmtInt(r.envelopes_left)),
        h("td", { class: "num granted" }, fmtFen(r.granted_fen)),
        h("td", { class: "num" }, r.status === "ended" ? fmtFen(r.returned_fen) : "—"),
        h("td", { class: "mono small", title: r.seed || r.seed_hash || "" },
          r.seed ? `seed ${r.seed.slice(0, 12)}…` : `hash ${(r.seed_hash || "").slice(0, 12)}…`)))));
  }

  function simulateForm(ctx, rain, view) {
    const { h, api, fmtFen, fmtPct, fmtInt } = ctx;
    const roundIn = h("select", { class: "rain-sim-round" },
      view.rounds.map((r) => h("option", { value: r.round }, r.round)));
    const shoppersIn = h("input", { type: "number", value: "10000", min: "1",
      class: "rain-sim-shoppers" });
    const out = h("div", { class: "rain-sim-out" });
    const run = async () => {
      try {
        const rep = await api("POST", ctx.gamePath(`/rains/${encodeURIComponent(rain)}/simulate`),
          { round: roundIn.value, shoppers: Math.max(1, Number(shoppersIn.value) || 1), runs: 20 });
        const s = rep.sizes_fen;
        ctx.clear(out, h("p", {},
          `Envelopes ${fmtFen(s.min)} … ${fmtFen(s.max)} (median ${fmtFen(s.p50)}, p90 `,
          `${fmtFen(s.p90)}, ${fmtPct(rep.at_minimum, 1)} at the minimum). `,
          `${fmtInt(rep.envelopes_grabbed)} grabbed: expected cost `,
          h("strong", { class: "rain-sim-cost" }, fmtFen(Math.round(rep.expected_cost_fen))),
          `, ${fmtFen(Math.round(rep.expected_cost_per_shopper_fen))} a shopper; `,
          `a shopper's chance of an envelope ${fmtPct(rep.chance_of_envelope, 1)}.`));
      } catch (e) {
        ctx.clear(out, ctx.errorBox(e));
      }
    };
    return h("div", { class: "form-row" },
      h("label", { class: "field" }, "Round", roundIn),
      h("label", { class: "field" }, "Shoppers", shoppersIn),
      h("button", { class: "btn", type: "button", onclick: run }, "Simulate"), out);
  }

  window.PetboxConsole.registerPlay({
    name: "rains",
    title: "Red-envelope rain",
    section: "rains",
    async render(el, ctx) {
      const { h, api } = ctx;
      const drafted = Object.keys(ctx.draftSection("rains") || {});
      el.append(h("p", { class: "muted small" }, drafted.length
        ? `In the draft: ${drafted.join(", ")} (edit rounds in the Draft tab)`
        : "No rain in the draft: add a \"rains\" section in the Draft tab."));
      const rains = await ctx.publishedIds(el, "rains",
        "No rain is published yet.");
      for (const id of rains) {
        const view = await api("GET", ctx.publicPath("rains", id), undefined, { auth: false });
        el.append(h("div", { class: "card", id: `rain-${id}` },
          h("div", { class: "card-head" }, h("h3", {}, view.title),
            h("span", { class: "muted small" }, `${view.kind} · ${view.currency}`)),
          roundsTable(ctx, view), simulateForm(ctx, id, view)));
      }
    },
  });
})();
