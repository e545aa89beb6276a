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
    // Units claims are still settling (none left otherwise): shoppers are told 还有机会.
    const pending = view.stock_pending
      ? [" · ", h("span", { class: "fs-pending" }, fmtInt(view.stock_pending)),
        " being settled (may come back)"]
      : [];
    return h("div", { class: "muted small" },
      h("span", { class: "fs-left" }, fmtInt(view.stock_left)), ` of ${fmtInt(view.stock)} left · `,
      h("span", { class: "fs-taken" }, fmtInt(taken)), ` held or sold (${pct}%)`, ...pending);
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
    for (const id of sales) {
      const v = await api("GET", ctx.publicPath("flashsales", id), undefined, { auth: false });
      el.append(h("div", { class: "card", id: `flashsale-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, v.title),
          h("span", { class: `badge fs-status ${v.status}` }, v.status),
          h("span", { class: "muted small" }, `${fmtFen(v.price_fen)} · SKU ${v.sku} · `,
            `${fmtTime(v.starts_at)} (${countdown(v.starts_in)}) · pay within `,
            `${Math.round(v.pay_seconds / 60)} min · ${v.per_shopper} per shopper`)),
        stockBar(ctx, v)));
    }
    for (const id of presales) {
      const v = await api("GET", ctx.publicPath("presales", id), undefined, { auth: false });
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
    const { h, field } = ctx;
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
      // Typed in the game's zone (the label names it), not the browser's.
      const starts = startIn.value ? ctx.parseTime(startIn.value)
        : Math.floor(Date.now() / 1000) + 3600;
      if (starts === null) throw new Error("Starts: pick a date and a time.");
      ctx.addToDraft("flashsales", id, { title: titleIn.value.trim() || id,
        sku: skuIn.value.trim(), price_fen: Math.round(Number(priceIn.value) * 100),
        starts_at: starts, stock: Math.max(1, Number(stockIn.value) || 1),
        pay_seconds: 60 * Math.max(1, Number(payIn.value) || 15) }, "Flash sale");
    };
    el.append(ctx.draftCard({ title: "Add a flash sale to the draft", buttonId: "fs-new-add",
      add, rows: [[field("Id", idIn), field("Title", titleIn), field("SKU", skuIn),
        field("Price (¥)", priceIn), field(`Starts (${ctx.timezone})`, startIn), field("Stock", stockIn),
        field("Pay within (min)", payIn)]] }));
  }

  window.PetboxConsole.registerPlay({
    name: "flashsale",
    title: "Flash sales",
    section: "flashsales",
    async render(el, ctx) {
      el.append(ctx.draftedNote("flashsales", "No flash sale in the draft."));
      addForm(ctx, el);
      await liveSales(ctx, el);
    },
  });
})();
