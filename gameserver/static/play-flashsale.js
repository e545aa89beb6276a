/* petbox console, Plays tab: flash sales (限时抢购) and presales (提前购). Shows each
 * published sale's live state from the public getFlashSale / getPresale (status,
 * countdown in server time, units left and taken), and adds a flash sale to the draft. */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,39}$/;
  const SKU = /^[A-Za-z0-9_.:-]{1,64}$/;

  function countdown(seconds) {
    if (seconds <= 0) return "started";
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    return `starts in ${h}h ${String(m).padStart(2, "0")}m`;
  }

  function stockBar(ctx, view) {
    const { h, fmtInt } = ctx;
    const taken = view.stock - view.stock_left;
    const pct = view.stock ? Math.round((100 * taken) / view.stock) : 0;
    return h("div", { class: "muted small" },
      h("span", { class: "fs-left" }, fmtInt(view.stock_left)), ` of ${fmtInt(view.stock)} left · `,
      h("span", { class: "fs-taken" }, fmtInt(taken)), ` held or sold (${pct}%)`);
  }

  async function liveSales(ctx, el) {
    const { h, api, fmtFen, fmtTime } = ctx;
    const live = await ctx.liveConfig();
    const sales = Object.keys((live && live.flashsales) || {});
    const presales = Object.keys((live && live.presales) || {});
    if (!sales.length && !presales.length) {
      el.append(h("p", { class: "muted" }, "No flash sale or presale is published yet."));
      return;
    }
    const base = `/v1/games/${encodeURIComponent(ctx.game)}`;
    const q = `?merchant=${encodeURIComponent(ctx.merchant)}`;
    for (const id of sales) {
      const v = await api("GET", `${base}/flashsales/${encodeURIComponent(id)}${q}`,
        undefined, { auth: false });
      el.append(h("div", { class: "card", id: `flashsale-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, v.title),
          h("span", { class: `badge fs-status ${v.status}` }, v.status),
          h("span", { class: "muted small" }, `${fmtFen(v.price_fen)} · SKU ${v.sku} · `,
            `${fmtTime(v.starts_at)} (${countdown(v.starts_in)}) · pay within `,
            `${Math.round(v.pay_seconds / 60)} min · ${v.per_shopper} per shopper`)),
        stockBar(ctx, v)));
    }
    for (const id of presales) {
      const v = await api("GET", `${base}/presales/${encodeURIComponent(id)}${q}`,
        undefined, { auth: false });
      const terms = v.benefit === "deposit_multiplier"
        ? `deposit ${fmtFen(v.deposit_fen)} counts ${fmtFen(v.deposit_value_fen)}`
        : `priority until ${fmtTime(v.priority_until)}`;
      el.append(h("div", { class: "card", id: `presale-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, `${v.title} (presale)`),
          h("span", { class: `badge fs-status ${v.status}` }, v.status),
          h("span", { class: "muted small" }, `${fmtFen(v.price_fen)} · ${terms} · `,
            `reserve ${fmtTime(v.reserve_from)} → ${fmtTime(v.reserve_until)} · `,
            `event ${fmtTime(v.event_at)} · convert by ${fmtTime(v.convert_until)}`)),
        stockBar(ctx, v)));
    }
  }

  function addForm(ctx, el) {
    const { h } = ctx;
    const field = (label, input) => h("label", { class: "field" }, label, input);
    const idIn = h("input", { id: "fs-new-id", placeholder: "midnight-nuts" });
    const titleIn = h("input", { id: "fs-new-title", placeholder: "零点秒杀 · 坚果" });
    const skuIn = h("input", { id: "fs-new-sku", placeholder: "SQ-NUTS-FLASH" });
    const priceIn = h("input", { id: "fs-new-price", type: "number", value: "9.90",
      min: "0", step: "0.01" });
    const startIn = h("input", { id: "fs-new-start", type: "datetime-local" });
    const stockIn = h("input", { id: "fs-new-stock", type: "number", value: "100", min: "1" });
    const payIn = h("input", { id: "fs-new-pay", type: "number", value: "15", min: "1" });
    const add = () => {
      const id = idIn.value.trim();
      if (!ID.test(id)) throw new Error("Sale id: lower-case letters, digits, - and _.");
      if (!SKU.test(skuIn.value.trim())) throw new Error("SKU: letters, digits, _ . : -");
      const starts = startIn.value ? Math.floor(new Date(startIn.value).getTime() / 1000)
        : Math.floor(Date.now() / 1000) + 3600;
      const sales = { ...(ctx.draftSection("flashsales") || {}) };
      sales[id] = { title: titleIn.value.trim() || id, sku: skuIn.value.trim(),
        price_fen: Math.round(Number(priceIn.value) * 100), starts_at: starts,
        stock: Math.max(1, Number(stockIn.value) || 1),
        pay_seconds: 60 * Math.max(1, Number(payIn.value) || 15) };
      ctx.setDraftSection("flashsales", sales);
      ctx.toast(`Flash sale ${id} added to the draft: save and publish it in the Draft tab.`);
      ctx.refresh();
    };
    el.append(h("div", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, "Add a flash sale to the draft")),
      h("div", { class: "form-row" }, field("Id", idIn), field("Title", titleIn),
        field("SKU", skuIn), field("Price (¥)", priceIn), field("Starts", startIn),
        field("Stock", stockIn), field("Pay within (min)", payIn)),
      h("button", { class: "btn primary", type: "button", id: "fs-new-add", onclick: () => {
        try { add(); } catch (e) { ctx.toast(e.message, "bad"); }
      } }, "Add to draft")));
  }

  window.PetboxConsole.registerPlay({
    name: "flashsale",
    title: "Flash sales",
    section: "flashsales",
    async render(el, ctx) {
      const drafted = Object.keys(ctx.draftSection("flashsales") || {});
      el.append(ctx.h("p", { class: "muted small" }, drafted.length
        ? `In the draft: ${drafted.join(", ")}` : "No flash sale in the draft."));
      addForm(ctx, el);
      await liveSales(ctx, el);
    },
  });
})();
