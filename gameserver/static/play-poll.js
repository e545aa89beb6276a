/* petbox console, Plays tab: polls (投票). Lists the draft's polls with a form to add
 * one, and each published poll's live tallies from the public getPoll. */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;

  function tallyTable(ctx, view) {
    const { h, fmtInt, fmtPct } = ctx;
    const total = view.total || 0;
    const winners = new Set((view.result && view.result.winners) || []);
    return h("table", { class: "table poll-tallies" },
      h("thead", {}, h("tr", {}, h("th", {}, "Option"), h("th", {}, "Votes"),
        h("th", {}, "Share"))),
      h("tbody", {}, view.options.map((o) => h("tr", { "data-option": o.id },
        h("td", {}, o.label, winners.has(o.id) ? " ★" : ""),
        h("td", { class: "num" }, fmtInt(o.votes)),
        h("td", { class: "num" }, total ? fmtPct(o.votes / total, 1) : "—")))));
  }

  async function livePolls(ctx, el) {
    const { h, api, fmtInt, fmtTime } = ctx;
    const polls = await ctx.publishedIds(el, "polls",
      "No poll is published yet.");
    for (const id of polls) {
      const view = await api("GET", ctx.publicPath("polls", id), undefined, { auth: false });
      el.append(h("div", { class: "card", id: `poll-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, view.title),
          h("span", { class: `badge ${view.status}` }, view.status),
          h("span", { class: "muted small" },
            `${fmtTime(view.opens_at)} → ${fmtTime(view.closes_at)} · `,
            h("span", { class: "poll-total" }, fmtInt(view.total)), " votes")),
        tallyTable(ctx, view)));
    }
  }

  function addForm(ctx, el) {
    const { h, field } = ctx;
    const now = Math.floor(Date.now() / 1000);
    const idIn = h("input", { id: "poll-new-id", placeholder: "best-flavour" });
    const titleIn = h("input", { id: "poll-new-title", placeholder: "Which flavour next?" });
    const optsIn = h("input", { id: "poll-new-options", placeholder: "pecan, cashew, walnut" });
    const daysIn = h("input", { id: "poll-new-days", type: "number", value: "7", min: "1" });
    const add = () => {
      const id = idIn.value.trim();
      const labels = optsIn.value.split(",").map((x) => x.trim()).filter(Boolean);
      if (!ID.test(id)) throw new Error("Poll id: lower-case letters, digits, - and _.");
      if (labels.length < 2) throw new Error("A poll needs at least two options.");
      const options = {};
      labels.forEach((label, i) => { options[`o${i + 1}`] = { label }; });
      ctx.addToDraft("polls", id, { title: titleIn.value.trim() || id, options, opens_at: now,
        closes_at: now + 86400 * Math.max(1, Number(daysIn.value) || 7) }, "Poll");
    };
    el.append(ctx.draftCard({ title: "Add a poll to the draft", buttonId: "poll-new-add", add,
      rows: [[field("Id", idIn), field("Title", titleIn),
        field("Options (comma-separated)", optsIn), field("Open for days", daysIn)]] }));
  }

  window.PetboxConsole.registerPlay({
    name: "poll",
    title: "Polls",
    section: "polls",
    async render(el, ctx) {
      el.append(ctx.draftedNote("polls", "No poll in the draft."));
      addForm(ctx, el);
      await livePolls(ctx, el);
    },
  });
})();
