/* petbox console, Plays tab: friend assist (助力). Lists the draft's campaigns with a
 * form to add one, each published campaign's results (getAssistCampaignAdmin) and a
 * look-up of one assist by its share code (getAssistAdmin: owner and helpers). */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;
  const CODE = /^[a-z2-7]{10}$/;

  function stat(ctx, label, value, cls) {
    const { h, fmtInt } = ctx;
    return h("div", { class: `stat ${cls}` }, h("div", { class: "stat-label" }, label),
      h("div", { class: "stat-value" }, fmtInt(value)));
  }

  function recentTable(ctx, rows) {
    const { h, fmtTime } = ctx;
    if (!rows.length) return h("p", { class: "muted" }, "No assist flushed to SQL yet.");
    return h("table", { class: "table assist-recent" },
      h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", {}, "Owner"),
        h("th", {}, "State"), h("th", {}, "Helps"), h("th", {}, "Started"))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-assist": r.assist },
        h("td", {}, h("code", {}, r.assist)), h("td", {}, r.owner),
        h("td", {}, h("span", { class: `badge ${r.state}` }, r.state)),
        h("td", { class: "num" }, `${r.helps}/${r.needed}`),
        h("td", {}, fmtTime(r.started_at))))));
  }

  function lookup(ctx, id) {
    const { h, api, gamePath, clear, errorBox } = ctx;
    const out = h("div", { class: "assist-lookup-out" });
    const input = h("input", { id: `assist-code-${id}`, placeholder: "share code" });
    const find = async () => {
      const code = input.value.trim();
      if (!CODE.test(code)) {
        clear(out, h("p", { class: "muted" }, "A share code is 10 letters a-z and digits 2-7."));
        return;
      }
      try {
        const a = await api("GET", gamePath(`/assists/${encodeURIComponent(id)}/${code}`));
        clear(out, h("dl", { class: "assist-found" },
          h("dt", {}, "Owner"), h("dd", { class: "assist-owner" }, a.owner),
          h("dt", {}, "State"), h("dd", { class: "assist-state" }, a.state),
          h("dt", {}, "Helps"), h("dd", {}, `${a.helps}/${a.needed}`),
          h("dt", {}, "Helpers"), h("dd", { class: "assist-helpers" },
            a.helpers.join(", ") || "—")));
      } catch (e) {
        clear(out, errorBox(e));
      }
    };
    return h("div", { class: "assist-lookup" },
      h("div", { class: "form-foot" },
        h("label", { class: "field" }, "Look up an assist by its share code", input),
        h("button", { class: "btn", type: "button", id: `assist-find-${id}`, onclick: find },
          "Find")), out);
  }

  async function liveCampaigns(ctx, el) {
    const { h, api, gamePath } = ctx;
    const campaigns = await ctx.publishedIds(el, "assists",
      "No assist campaign is published yet.");
    for (const id of campaigns) {
      const r = await api("GET", gamePath(`/assists/${encodeURIComponent(id)}`));
      el.append(h("div", { class: "card", id: `assist-campaign-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, r.title),
          h("span", { class: "muted small" }, `${r.needed} helps complete an assist`,
            r.truncated ? " · counts partial (too many assists for one report)" : "")),
        h("div", { class: "stats" }, stat(ctx, "Started", r.started, "assist-started"),
          stat(ctx, "Open", r.open, "assist-open"),
          stat(ctx, "Complete", r.complete, "assist-complete"),
          stat(ctx, "Expired", r.expired, "assist-expired"),
          stat(ctx, "Helps", r.helps, "assist-helps")),
        recentTable(ctx, r.recent), lookup(ctx, id)));
    }
  }

  function addForm(ctx, el) {
    const { h, field } = ctx;
    const num = (id, value, min) => h("input", { id, type: "number", value, min });
    const idIn = h("input", { id: "assist-new-id", placeholder: "d11-friends" });
    const titleIn = h("input", { id: "assist-new-title", placeholder: "3 friends help, ¥10 off" });
    const neededIn = num("assist-new-needed", "3", "1");
    const hoursIn = num("assist-new-hours", "24", "1");
    const coupons = Object.keys(ctx.draftSection("coupons") || {});
    const currencies = Object.keys(ctx.draftSection("currencies") || {});
    const couponIn = h("select", { id: "assist-new-coupon" }, h("option", { value: "" }, "none"),
      coupons.map((c) => h("option", { value: c }, c)));
    const amountIn = num("assist-new-amount", "0", "0");
    const perDayIn = num("assist-new-per-day", "5", "1");
    const fansIn = h("input", { id: "assist-new-fans", type: "checkbox" });
    const add = () => {
      const id = idIn.value.trim();
      if (!ID.test(id)) throw new Error("Campaign id: lower-case letters, digits, - and _.");
      const reward = {};
      if (couponIn.value) reward.coupon = couponIn.value;
      const amount = Number(amountIn.value) || 0;
      if (amount > 0 && currencies.length) reward.currency = { [currencies[0]]: amount };
      if (!reward.coupon && !reward.currency) {
        throw new Error("The owner's reward needs a coupon or an amount of currency.");
      }
      const perDay = Math.max(1, Number(perDayIn.value) || 5);
      ctx.addToDraft("assists", id, { title: titleIn.value.trim() || id,
        needed: Math.min(100, Math.max(1, Number(neededIn.value) || 3)),
        duration_s: 3600 * Math.max(1, Number(hoursIn.value) || 24), owner_reward: reward,
        helps_per_day: perDay, helps_per_campaign: Math.max(perDay, 50),
        new_fans_only: fansIn.checked }, "Campaign");
    };
    el.append(ctx.draftCard({ title: "Add an assist campaign to the draft",
      buttonId: "assist-new-add", add,
      rows: [[field("Id", idIn), field("Title", titleIn), field("Helps needed", neededIn),
        field("Hours to collect", hoursIn)],
      [field("Owner's coupon", couponIn),
        field(`Owner's ${currencies[0] || "currency"}`, amountIn),
        field("Helps per helper a day", perDayIn), field("New fans only", fansIn)]] }));
  }

  window.PetboxConsole.registerPlay({
    name: "assist",
    title: "Friend assist",
    section: "assists",
    async render(el, ctx) {
      el.append(ctx.draftedNote("assists", "No assist campaign in the draft.",
        { id: "assist-drafted" }));
      addForm(ctx, el);
      await liveCampaigns(ctx, el);
    },
  });
})();
