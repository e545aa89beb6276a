/* petbox console, Plays tab: daily check-in (签到) and makeups (补签). The draft's
 * `checkin` section as a form: the reward of each streak day, and the makeup's cost,
 * window and limit per cycle. Checked as economy/checkin.py checks it before anything
 * is written; then written into the draft editor and, with "Save to draft", saved
 * (putGameDraft): what the server refuses is shown here with its paths. */
"use strict";

(() => {
  const MAX_DAYS = 31;  // economy/checkin.py: a cycle of 1..31 days
  const MAKEUP_MAX = 31;  // per_cycle and window_days: 1..31
  const MAKEUP_DEFAULTS = { per_cycle: 1, window_days: 7, reward: true };

  function describe(c) {
    if (!c || !Array.isArray(c.cycle)) return null;
    const m = c.makeup;
    const makeup = m && typeof m === "object"
      ? `makeups: ${m.per_cycle ?? MAKEUP_DEFAULTS.per_cycle} a cycle, up to ` +
        `${m.window_days ?? MAKEUP_DEFAULTS.window_days} days back`
      : "no makeups";
    return `a ${c.cycle.length}-day cycle, ${makeup}`;
  }

  /** ``value`` under ``key`` unless it is the default and the entry did not have the key:
   * re-applying an unchanged form leaves the draft as it was. */
  function keep(out, key, value, original) {
    if (value !== MAKEUP_DEFAULTS[key] || (original && key in original)) out[key] = value;
  }

  function form(ctx, el) {
    const { h, field } = ctx;
    const drafted = ctx.draftSection("checkin");
    const c = drafted && typeof drafted === "object" ? drafted : null;
    const m = c && c.makeup && typeof c.makeup === "object" ? c.makeup : null;
    const days = h("div", { class: "checkin-days" });
    const count = h("span", { class: "muted small", "aria-live": "polite" });
    const addDayBtn = h("button", { type: "button", class: "btn", id: "ci-add-day" },
      "+ Add a day");
    const dropDayBtn = h("button", { type: "button", class: "btn ghost", id: "ci-remove-day" },
      "Remove the last day");
    const refresh = () => {
      const n = days.children.length;
      count.textContent = `${n} day${n > 1 ? "s" : ""} (1 to ${MAX_DAYS}), then day 1 again`;
      addDayBtn.disabled = n >= MAX_DAYS;
      dropDayBtn.disabled = n <= 1;
    };
    const addDay = (reward) => {
      const n = days.children.length + 1;
      const legend = `Day ${n}`;
      days.append(h("fieldset", { class: "checkin-day", "data-day": n }, h("legend", {}, legend),
        ctx.rewardEditor(`ci-day${n}`, legend, reward)));
      refresh();
    };
    addDayBtn.addEventListener("click", () => {
      addDay({});
      const last = days.lastElementChild.querySelector("input, select, button");
      if (last) last.focus();
    });
    dropDayBtn.addEventListener("click", () => {
      days.lastElementChild.remove();
      refresh();
      addDayBtn.focus();
    });
    for (const reward of c && Array.isArray(c.cycle) ? c.cycle : [{}]) addDay(reward);

    const makeupOn = h("input", { type: "checkbox", id: "ci-makeup", checked: m ? true : null });
    const cost = ctx.rewardEditor("ci-makeup-cost", "Makeup cost", m && m.cost,
      { coupon: false });
    const num = (id, value) => h("input", { id, type: "number", min: "1", max: String(MAKEUP_MAX),
      step: "1", inputmode: "numeric", value });
    const perCycle = num("ci-makeup-per-cycle", m ? m.per_cycle ?? 1 : 1);
    const windowIn = num("ci-makeup-window", m ? m.window_days ?? 7 : 7);
    const earns = h("input", { type: "checkbox", id: "ci-makeup-reward",
      checked: !m || m.reward !== false ? true : null });
    const makeupBox = h("fieldset", { class: "checkin-makeup", id: "ci-makeup-fields" },
      h("legend", {}, "Makeup rules"),
      h("div", { class: "form-row" }, field("Makeups a cycle", perCycle),
        field("Up to this many days back", windowIn),
        h("label", { class: "field check" }, earns, "A made-up day earns its reward")),
      h("p", { class: "small strong" }, "Cost of one makeup"), cost);
    const syncMakeup = () => { makeupBox.disabled = !makeupOn.checked; };
    makeupOn.addEventListener("change", syncMakeup);
    syncMakeup();

    const problemsBox = h("div", { class: "error-box", role: "alert", id: "ci-problems",
      hidden: true });
    const out = h("div", { id: "ci-result", "aria-live": "polite" });

    const read = () => {
      const problems = [];
      const cycle = [...days.children].map((day, i) => {
        const r = day.querySelector(".reward-editor").read(`$.checkin.cycle[${i}]`);
        problems.push(...r.problems);
        return r.value;
      });
      const value = { cycle };
      if (makeupOn.checked) {
        const paid = cost.read("$.checkin.makeup.cost");
        problems.push(...paid.problems);
        const makeup = { cost: paid.value };
        keep(makeup, "per_cycle", ctx.readInt(perCycle, "$.checkin.makeup.per_cycle", 1,
          MAKEUP_MAX, problems), m);
        keep(makeup, "window_days", ctx.readInt(windowIn, "$.checkin.makeup.window_days", 1,
          MAKEUP_MAX, problems), m);
        keep(makeup, "reward", earns.checked, m);
        value.makeup = makeup;
      }
      ctx.showProblems(problemsBox, problems, el);
      return problems.length ? null : value;
    };
    const apply = () => {
      const value = read();
      if (value) ctx.setDraftSection("checkin", value);
      return value;
    };
    // Enter in any field saves, as the button does.
    const save = h("button", { type: "submit", class: "btn primary", id: "ci-save" },
      "Save to draft");
    const onSubmit = (ev) => {
      ev.preventDefault();
      ctx.busy(save, async () => {
        out.replaceChildren();
        if (!apply()) return;
        try {
          await ctx.saveDraft();
          ctx.toast("Check-in saved in the draft: publish it to put it live.");
          ctx.refresh();
        } catch (e) {
          // The editor keeps the change (unsaved) and the Draft tab lists the same problems.
          out.replaceChildren(ctx.errorBox(e));
        }
      });
    };
    const applyOnly = h("button", { type: "button", class: "btn", id: "ci-apply",
      onclick: () => {
        out.replaceChildren();
        if (!apply()) return;
        ctx.toast("Check-in written into the draft editor: save it in the Draft tab.");
        ctx.refresh();
      } }, "Apply without saving");
    const remove = c ? h("button", { type: "button", class: "btn ghost", id: "ci-remove",
      onclick: async () => {
        const ok = await ctx.confirm("Take check-in out of the draft?", h("p", {},
          "Once this draft is published shoppers can no longer check in; their streaks " +
          "are kept in their state."), "Take it out");
        if (!ok) return;
        ctx.setDraftSection("checkin", undefined);
        ctx.toast("Check-in taken out of the draft editor: save it in the Draft tab.");
        ctx.refresh();
      } }, "Take check-in out") : null;

    el.append(h("form", { class: "card", id: "ci-form", novalidate: true,
      "aria-labelledby": "ci-title", onsubmit: onSubmit },
    h("div", { class: "card-head" }, h("h3", { id: "ci-title" }, "Daily check-in"), count),
    h("p", { class: "muted small" }, `A day is a calendar day in ${ctx.timezone}: a shopper ` +
      "checks in once a day from 00:00 there, and a streak earns day 1's reward, day 2's… " +
      "and starts the cycle again after its last day. Amounts are whole numbers."),
    days,
    h("div", { class: "form-foot" }, addDayBtn, dropDayBtn),
    h("label", { class: "field check" }, makeupOn, "Allow makeups (补签): a missed day can be " +
      "checked in later, for a cost"),
    makeupBox, problemsBox,
    h("div", { class: "form-foot" }, save, applyOnly, h("span", { class: "spacer" }), remove),
    out));
  }

  window.PetboxConsole.registerPlay({
    name: "checkin",
    title: "Daily check-in",
    section: "checkin",
    async render(el, ctx) {
      const { h } = ctx;
      const drafted = describe(ctx.draftSection("checkin"));
      el.append(h("p", { class: "muted small", id: "ci-drafted" }, drafted
        ? `In the draft: ${drafted}.` : "No check-in in the draft: shoppers cannot check in."));
      form(ctx, el);
      const live = await ctx.liveConfig();
      const published = describe(live && live.checkin);
      el.append(h("p", { class: "muted small", id: "ci-live" }, !live
        ? "Nothing is published yet." : published ? `Live now: ${published}.`
          : "No check-in is live now."));
    },
  });
})();
