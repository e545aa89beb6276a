/* petbox console, Plays tab: shop tasks (browse, follow, share, join the group, buy). The
 * draft's `tasks` section as a table with a form to add a task or change one. Checked as
 * economy/tasks.py checks it before anything is written; then written into the draft
 * editor and, with "Save to draft", saved (putGameDraft): what the server refuses is
 * shown here with its paths. */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;  // economy/schema.py ID_PATTERN (map keys)
  const MAX_TASKS = 100;
  const KINDS = { browse: "Browse the shop", follow: "Follow the shop", share: "Share",
    join_group: "Join the fan group", purchase: "Buy (orders)" };
  const PERIODS = { daily: "Every day", weekly: "Every week (Monday on)", once: "Once ever" };
  const MAX_FEN = 10_000_000_000;
  // Schema defaults: a field at its default is written only when the task had it.
  const DEFAULTS = { period: "daily", limit: 1, browse_s: 15, ticket_ttl_s: 3600,
    min_order_fen: 0, spend_fen: 0 };
  let editing = null;  // the id whose entry the form holds, or null: a new task
  let editingGame = null;  // the game it is an id of (another game's table starts afresh)

  const chars = (s) => [...s].length;  // as Python counts a str: code points

  /** Fen typed as yuan ("99", "99.5", "99.90"); null (and a problem) otherwise. */
  function readYuan(input, path, problems) {
    const raw = input.value.trim() || "0";
    if (!/^\d{1,9}(\.\d{1,2})?$/.test(raw)) {
      problems.push({ input, path, message: "must be an amount in ¥ with at most 2 decimals" });
      return null;
    }
    const fen = Math.round(Number(raw) * 100);
    if (fen > MAX_FEN) {
      problems.push({ input, path, message: `must be ≤ ${MAX_FEN} (fen)` });
      return null;
    }
    return fen;
  }

  function rewardText(r) {
    if (!r || typeof r !== "object") return "—";
    const parts = [
      ...Object.entries(r.currency || {}).map(([k, v]) => `${v} ${k}`),
      ...Object.entries(r.items || {}).map(([k, v]) => `${v} × ${k}`),
      r.coupon ? `coupon ${r.coupon}` : null].filter(Boolean);
    return parts.join(", ") || "nothing";
  }

  function table(ctx, tasks) {
    const { h } = ctx;
    const ids = Object.keys(tasks);
    if (!ids.length) return h("p", { class: "muted" }, "No task in the draft yet.");
    return h("table", { class: "data tasks", id: "tk-table" },
      h("caption", { class: "sr-only" }, "Tasks in the draft"),
      h("thead", {}, h("tr", {}, ["Id", "Name", "Kind", "Per period", "Reward", ""].map((t) =>
        h("th", { scope: "col" }, t)))),
      h("tbody", {}, ids.map((id) => {
        const t = tasks[id] || {};
        return h("tr", { "data-task": id },
          h("th", { scope: "row" }, h("code", {}, id)),
          h("td", {}, t.name || "—"),
          h("td", {}, KINDS[t.kind] || t.kind || "—"),
          h("td", {}, `${t.limit ?? 1} · ${(t.period || "daily")}`),
          h("td", {}, rewardText(t.reward)),
          h("td", { class: "actions" },
            h("button", { type: "button", class: "btn small", id: `tk-edit-${id}`,
              "aria-label": `Change task ${id}`,
              onclick: () => { editing = id; editingGame = ctx.game; ctx.refresh(); } },
            "Change"),
            h("button", { type: "button", class: "btn small ghost", id: `tk-remove-${id}`,
              "aria-label": `Take task ${id} out`,
              onclick: () => removeTask(ctx, tasks, id) }, "Take out")));
      })));
  }

  async function removeTask(ctx, tasks, id) {
    const ok = await ctx.confirm(`Take task ${id} out of the draft?`, ctx.h("p", {},
      "Once this draft is published shoppers no longer see it; what they earned stays."),
    "Take it out");
    if (!ok) return;
    const rest = { ...tasks };
    delete rest[id];
    if (editing === id) editing = null;
    ctx.setDraftSection("tasks", rest);
    ctx.toast(`Task ${id} taken out of the draft editor: save it in the Draft tab.`);
    ctx.refresh();
  }

  function form(ctx, el, tasks) {
    const { h, field } = ctx;
    if (editingGame !== ctx.game) editing = null;
    const t = editing !== null && tasks[editing] ? tasks[editing] : null;
    if (!t) editing = null;
    const original = t || {};
    const idIn = h("input", { id: "tk-id", placeholder: "share_pet", spellcheck: "false",
      autocomplete: "off", value: editing || "", readonly: t ? true : null });
    const nameIn = h("input", { id: "tk-name", maxlength: "60", placeholder: "Share your squirrel",
      value: original.name || "" });
    const select = (id, options, value) => {
      const s = h("select", { id }, Object.entries(options).map(([k, label]) =>
        h("option", { value: k }, label)));
      s.value = value in options ? value : Object.keys(options)[0];
      return s;
    };
    const kindIn = select("tk-kind", KINDS, original.kind);
    const periodIn = select("tk-period", PERIODS, original.period || "daily");
    const num = (id, value, min, max) => h("input", { id, type: "number", step: "1",
      inputmode: "numeric", min: String(min), max: String(max), value });
    const limitIn = num("tk-limit", original.limit ?? 1, 1, 100);
    const browseIn = num("tk-browse-s", original.browse_s ?? 15, 1, 3600);
    const ttlIn = num("tk-ticket-ttl", original.ticket_ttl_s ?? 3600, 60, 86400);
    const yuan = (fen) => (fen ? (fen / 100).toFixed(2) : "0");
    const minOrderIn = h("input", { id: "tk-min-order", inputmode: "decimal",
      value: yuan(original.min_order_fen) });
    const spendIn = h("input", { id: "tk-spend", inputmode: "decimal",
      value: yuan(original.spend_fen) });
    const skusIn = h("textarea", { id: "tk-skus", rows: "3", spellcheck: "false",
      placeholder: "one SKU a line; none: any order counts" });
    skusIn.value = (original.skus || []).join("\n");
    const reward = ctx.rewardEditor("tk-reward", "Reward", original.reward);
    const browseRow = h("div", { class: "form-row", id: "tk-browse-fields" },
      field("Seconds of browsing", browseIn), field("Ticket valid for (s)", ttlIn));
    const purchaseRow = h("div", { class: "form-row", id: "tk-purchase-fields" },
      field("Order of at least (¥)", minOrderIn),
      field("One completion per ¥ spent (0: per order)", spendIn),
      field("Only these SKUs", skusIn));
    const syncKind = () => {
      browseRow.hidden = kindIn.value !== "browse";
      purchaseRow.hidden = kindIn.value !== "purchase";
    };
    kindIn.addEventListener("change", syncKind);
    syncKind();
    const problemsBox = h("div", { class: "error-box", role: "alert", id: "tk-problems",
      hidden: true });
    const out = h("div", { id: "tk-result", "aria-live": "polite" });

    const read = () => {
      const problems = [];
      const id = idIn.value.trim();
      const base = `$.tasks.${id || "?"}`;
      if (!ID.test(id)) {
        problems.push({ input: idIn, path: base, message:
          "id: 1 to 64 of a-z, 0-9, - and _, starting with a letter or digit" });
      } else if (!t && Object.prototype.hasOwnProperty.call(tasks, id)) {
        problems.push({ input: idIn, path: base,
          message: "is in the draft already: change it from the table" });
      } else if (!t && Object.keys(tasks).length >= MAX_TASKS) {
        problems.push({ input: idIn, path: "$.tasks", message: `must have 0..${MAX_TASKS} entries` });
      }
      const name = nameIn.value.trim();
      if (!(chars(name) >= 1 && chars(name) <= 60)) {
        problems.push({ input: nameIn, path: `${base}.name`,
          message: `length must be 1..60, is ${chars(name)}` });
      }
      const task = { name, kind: kindIn.value };
      const put = (key, value) => {
        if (value !== null && (value !== DEFAULTS[key] || key in original)) task[key] = value;
      };
      put("period", periodIn.value);
      put("limit", ctx.readInt(limitIn, `${base}.limit`, 1, 100, problems));
      const r = reward.read(`${base}.reward`);
      problems.push(...r.problems);
      task.reward = r.value;
      if (kindIn.value === "browse") {
        put("browse_s", ctx.readInt(browseIn, `${base}.browse_s`, 1, 3600, problems));
        put("ticket_ttl_s", ctx.readInt(ttlIn, `${base}.ticket_ttl_s`, 60, 86400, problems));
      }
      if (kindIn.value === "purchase") {
        // spend_fen, min_order_fen and skus are for purchase tasks only (the server
        // refuses them on others), so they are written for those alone.
        put("min_order_fen", readYuan(minOrderIn, `${base}.min_order_fen`, problems));
        put("spend_fen", readYuan(spendIn, `${base}.spend_fen`, problems));
        const skus = skusIn.value.split("\n").map((s) => s.trim()).filter(Boolean);
        const bad = skus.findIndex((s) => chars(s) > 64);
        if (bad >= 0) {
          problems.push({ input: skusIn, path: `${base}.skus[${bad}]`,
            message: `length must be 1..64, is ${chars(skus[bad])}` });
        } else if (skus.length > 200) {
          problems.push({ input: skusIn, path: `${base}.skus`, message: "must have 0..200 entries" });
        } else if (skus.length || "skus" in original) task.skus = skus;
      }
      ctx.showProblems(problemsBox, problems, el);
      return problems.length ? null : [id, task];
    };
    const apply = () => {
      const entry = read();
      if (!entry) return null;
      // The other tasks as the draft has them; this one in its place (or last when new).
      ctx.setDraftSection("tasks", { ...tasks, [entry[0]]: entry[1] });
      editing = null;
      return entry[0];
    };
    const save = h("button", { type: "submit", class: "btn primary", id: "tk-save" },
      "Save to draft");
    const onSubmit = (ev) => {
      ev.preventDefault();
      ctx.busy(save, async () => {
        out.replaceChildren();
        const id = apply();
        if (!id) return;
        try {
          await ctx.saveDraft();
          ctx.toast(`Task ${id} saved in the draft: publish it to put it live.`);
          ctx.refresh();
        } catch (e) {
          // The editor keeps the change (unsaved) and the Draft tab lists the same problems.
          editing = id;
          editingGame = ctx.game;
          out.replaceChildren(ctx.errorBox(e));
        }
      });
    };
    const applyOnly = h("button", { type: "button", class: "btn", id: "tk-apply",
      onclick: () => {
        out.replaceChildren();
        const id = apply();
        if (!id) return;
        ctx.toast(`Task ${id} written into the draft editor: save it in the Draft tab.`);
        ctx.refresh();
      } }, "Apply without saving");
    const cancel = t ? h("button", { type: "button", class: "btn ghost", id: "tk-cancel",
      onclick: () => { editing = null; ctx.refresh(); } }, "New task instead") : null;

    el.append(h("form", { class: "card", id: "tk-form", novalidate: true,
      "aria-labelledby": "tk-title", onsubmit: onSubmit },
    h("div", { class: "card-head" }, h("h3", { id: "tk-title" },
      t ? `Change task ${editing}` : "Add a task")),
    h("p", { class: "muted small" }, `Days and weeks are ${ctx.timezone}'s: a daily task ` +
      "opens again at 00:00 there, a weekly one on Monday at 00:00. Amounts are whole numbers."),
    h("div", { class: "form-row" }, field("Id", idIn), field("Name", nameIn),
      field("Kind", kindIn), field("Period", periodIn),
      field("Completions a period", limitIn)),
    browseRow, purchaseRow,
    h("fieldset", { class: "task-reward" }, h("legend", {}, "Reward of one completion"), reward),
    problemsBox,
    h("div", { class: "form-foot" }, save, applyOnly, h("span", { class: "spacer" }), cancel),
    out));
  }

  window.PetboxConsole.registerPlay({
    name: "tasks",
    title: "Shop tasks",
    section: "tasks",
    async render(el, ctx) {
      const { h } = ctx;
      const drafted = ctx.draftSection("tasks");
      const tasks = drafted && typeof drafted === "object" ? drafted : {};
      el.append(h("div", { class: "card" }, h("div", { class: "card-head" },
        h("h3", {}, "Tasks in the draft"),
        h("span", { class: "muted small" }, `${Object.keys(tasks).length} of ${MAX_TASKS}`)),
      table(ctx, tasks)));
      form(ctx, el, tasks);
      const live = await ctx.liveConfig();
      const ids = Object.keys((live && live.tasks) || {});
      el.append(h("p", { class: "muted small", id: "tk-live" }, !live
        ? "Nothing is published yet." : ids.length ? `Live now: ${ids.join(", ")}.`
          : "No task is live now."));
    },
  });
})();
