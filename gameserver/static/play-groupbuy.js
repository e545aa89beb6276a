/* petbox console, Plays tab: group buy (拼团). Lists the draft's offers with a form to add
 * one, and for each published offer its open groups (members, seats left, expiry) and its
 * stock, from listGroupBuysAdmin. */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;

  function groupsTable(ctx, view) {
    const { h, fmtTime } = ctx;
    if (!view.groups.length) return h("p", { class: "muted small" }, "No open group.");
    return h("table", { class: "table groupbuy-groups" },
      h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", {}, "Members"),
        h("th", {}, "Seats left"), h("th", {}, "Expires"))),
      h("tbody", {}, view.groups.map((g) => h("tr", { "data-group": g.code },
        h("td", {}, h("code", {}, g.code)),
        h("td", {}, `${g.member_count}/${g.size}: ${g.users.join(", ")}`),
        h("td", { class: "num" }, String(g.seats_left)),
        h("td", {}, fmtTime(g.expires_at))))));
  }

  async function liveOffers(ctx, el) {
    const { h, api, fmtInt } = ctx;
    const offers = await ctx.publishedIds(el, "groupbuys",
      "No group-buy offer is published yet.");
    for (const id of offers) {
      let view;
      try {
        view = await api("GET", ctx.gamePath(`/groupbuys/${encodeURIComponent(id)}`));
      } catch (e) {
        el.append(ctx.errorBox(e));
        continue;
      }
      const stock = view.stock
        ? `stock: ${fmtInt(view.stock.left)} left of ${fmtInt(view.stock.total)}, ` +
          `${fmtInt(view.stock.granted)} rewarded`
        : "no stock limit";
      el.append(h("div", { class: "card", id: `groupbuy-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, view.title),
          h("span", { class: "badge" }, `${view.size} seats`),
          view.auto_complete ? h("span", { class: "badge" }, "auto-complete") : "",
          h("span", { class: "muted small" },
            h("span", { class: "groupbuy-open" }, fmtInt(view.open)), " open · ", stock)),
        groupsTable(ctx, view)));
    }
  }

  function addForm(ctx, el) {
    const { h, field } = ctx;
    const idIn = h("input", { id: "groupbuy-new-id", placeholder: "d11-trio" });
    const titleIn = h("input", { id: "groupbuy-new-title", placeholder: "3 friends, ¥59.9" });
    const sizeIn = h("input", { id: "groupbuy-new-size", type: "number", value: "3",
      min: "2", max: "50" });
    const hoursIn = h("input", { id: "groupbuy-new-hours", type: "number", value: "24",
      min: "1" });
    const priceIn = h("input", { id: "groupbuy-new-price", type: "number", value: "0",
      min: "0", step: "0.01" });
    const autoIn = h("input", { id: "groupbuy-new-auto", type: "checkbox" });
    const add = () => {
      const id = idIn.value.trim();
      const size = Number(sizeIn.value);
      if (!ID.test(id)) throw new Error("Offer id: lower-case letters, digits, - and _.");
      if (!(size >= 2 && size <= 50)) throw new Error("A group has 2 to 50 members.");
      ctx.addToDraft("groupbuys", id, { title: titleIn.value.trim() || id, size,
        duration_s: 3600 * Math.max(1, Number(hoursIn.value) || 24),
        price_fen: Math.round(100 * (Number(priceIn.value) || 0)),
        auto_complete: autoIn.checked }, "Offer");
    };
    el.append(ctx.draftCard({ title: "Add a group-buy offer to the draft",
      buttonId: "groupbuy-new-add", add,
      rows: [[field("Id", idIn), field("Title", titleIn), field("Group size", sizeIn),
        field("Time limit (hours)", hoursIn), field("Group price (¥)", priceIn),
        field("Auto-complete on expiry", autoIn)]],
      note: "Reward, cost, per-shopper limit and stock: edit the offer in the Draft tab." }));
  }

  // A render may start while an earlier one still waits for the server (the play shown
  // and the game loaded at once): only the latest one's content is shown.
  let latest = 0;

  window.PetboxConsole.registerPlay({
    name: "groupbuy",
    title: "Group buy",
    section: "groupbuys",
    async render(el, ctx) {
      const mine = ++latest;
      const box = ctx.h("div", {});
      box.append(ctx.draftedNote("groupbuys", "No group-buy offer in the draft."));
      addForm(ctx, box);
      await liveOffers(ctx, box);
      if (mine === latest) ctx.clear(el, box);
    },
  });
})();
