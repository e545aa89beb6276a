/* petbox console, Plays tab: sampling (派样). Each published campaign as the merchant
 * sees it (getSampleCampaignAdmin: applicants, winners, review rate, reports), and the
 * lottery draw (drawSampleWinners) once the application window is over. */
"use strict";

(() => {
  function summary(ctx, v) {
    const { h, fmtInt, fmtPct, fmtTime } = ctx;
    const row = (k, val, cls) => h("tr", {}, h("th", {}, k), h("td", { class: cls || "" }, val));
    return h("table", { class: "table sample-summary" }, h("tbody", {},
      row("Mode", v.mode === "lottery" ? "lottery after the window" : "first come"),
      row("Window", `${fmtTime(v.opens_at)} → ${fmtTime(v.closes_at)}`),
      row("Applicants", fmtInt(v.applicants), "num sample-applicants"),
      row("Winners", `${fmtInt(v.winners)} of ${fmtInt(v.stock)}`, "num sample-winners"),
      row("Reviews", `${fmtInt(v.reviews)} (${fmtPct(v.review_rate, 1)})`, "num sample-reviews"),
      row("Seed", v.result ? `revealed ${v.result.seed.slice(0, 12)}…`
        : `hash ${(v.seed_hash || "").slice(0, 12)}…`, "mono small")));
  }

  function drawButton(ctx, id, v) {
    const { h, api } = ctx;
    if (v.mode !== "lottery" || v.result) return null;
    const due = v.server_time >= v.closes_at + 5;
    return h("button", { class: "btn primary", type: "button", id: `sample-draw-${id}`,
      disabled: due ? undefined : "disabled",
      title: due ? "" : "The lottery is drawn after the application window",
      onclick: async () => {
        try {
          const r = await api("POST", ctx.gamePath(`/samples/${encodeURIComponent(id)}/draw`),
            {}, { idempotencyKey: ctx.newKey() });
          ctx.toast(`${r.winners} winners drawn from ${r.applicants} applicants.`);
          ctx.refresh();
        } catch (e) {
          ctx.toast(e.message, "bad");
        }
      } }, "Draw winners");
  }

  function reports(ctx, v) {
    const { h, fmtTime } = ctx;
    if (!v.reports.length) return h("p", { class: "muted small" }, "No review yet.");
    return h("table", { class: "table sample-reports" },
      h("thead", {}, h("tr", {}, h("th", {}, "Shopper"), h("th", {}, "When"),
        h("th", {}, "Report"))),
      h("tbody", {}, v.reports.slice(0, 50).map((r) => h("tr", {},
        h("td", {}, r.user), h("td", {}, fmtTime(r.at)), h("td", {}, r.report)))));
  }

  window.PetboxConsole.registerPlay({
    name: "samples",
    title: "Sampling",
    section: "samples",
    async render(el, ctx) {
      const { h, api } = ctx;
      const campaigns = await ctx.publishedIds(el, "samples",
        "No sampling campaign is published yet: add a \"samples\" section in the Draft tab.");
      for (const id of campaigns) {
        const v = await api("GET", ctx.gamePath(`/samples/${encodeURIComponent(id)}`));
        const winners = v.winner_users.length
          ? h("p", { class: "small sample-winner-list" }, `Ship to: ${v.winner_users.join(", ")}`)
          : null;
        el.append(h("div", { class: "card", id: `sample-${id}` },
          h("div", { class: "card-head" }, h("h3", {}, v.title),
            h("span", { class: `badge ${v.status}` }, v.status),
            h("span", { class: "muted small" }, v.sku)),
          summary(ctx, v), drawButton(ctx, id, v), winners, reports(ctx, v)));
      }
    },
  });
})();
