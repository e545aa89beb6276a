/* petbox console, Plays tab: teams (组队). Lists the draft's team seasons with a form to
 * add one, and each published season's status and best teams (getTeamSeasonAdmin); a
 * team's row opens its members and milestones (getTeamAdmin). */
"use strict";

(() => {
  const ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;

  function teamDetail(ctx, view) {
    const { h, fmtInt, fmtTime } = ctx;
    return h("div", { class: "team-detail", id: `team-${view.team}` },
      h("p", { class: "small" }, `${view.name} · code `, h("code", {}, view.code),
        ` · ${view.size}/${view.max_size} members · ${fmtInt(view.points)} points` +
        (view.kept_points ? ` (${fmtInt(view.kept_points)} kept from members who left)` : "")),
      h("table", { class: "table team-members" },
        h("thead", {}, h("tr", {}, h("th", {}, "Member"), h("th", {}, "Points"),
          h("th", {}, "Joined"))),
        h("tbody", {}, view.members.map((m) => h("tr", { "data-user": m.user },
          h("td", {}, m.user), h("td", { class: "num" }, fmtInt(m.points)),
          h("td", {}, fmtTime(m.joined_at)))))),
      h("p", { class: "muted small" }, view.milestones.map((m) =>
        `${m.id} (${fmtInt(m.points)}): ${m.reached_at ? `reached ${fmtTime(m.reached_at)}` :
          "not yet"}`).join(" · ")));
  }

  function teamsTable(ctx, season, detail) {
    const { h, fmtInt, api, gamePath, errorBox, clear } = ctx;
    const open = async (team) => {
      try {
        const view = await api("GET", gamePath(
          `/teams/${encodeURIComponent(season.season)}/${encodeURIComponent(team)}`));
        clear(detail, teamDetail(ctx, view));
      } catch (e) {
        clear(detail, errorBox(e));
      }
    };
    if (!season.board) {
      return h("p", { class: "muted small" },
        "This season has no board: set `board` to rank its teams here.");
    }
    if (!season.teams.length) return h("p", { class: "muted small" }, "No team ranked yet.");
    return h("table", { class: "table team-board" },
      h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Team"), h("th", {}, "Points"),
        h("th", {}, "Members"), h("th", {}, "Milestones"))),
      h("tbody", {}, season.teams.map((t) => h("tr", { "data-team": t.team },
        h("td", { class: "num" }, String(t.rank)),
        h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); open(t.team); } },
          t.name || t.team)),
        h("td", { class: "num" }, fmtInt(t.points)),
        h("td", { class: "num" }, t.size === null ? "—" : String(t.size)),
        h("td", {}, t.milestones_reached.join(", "))))));
  }

  async function liveSeasons(ctx, el) {
    const { h, api, gamePath, fmtTime } = ctx;
    const seasons = await ctx.publishedIds(el, "teams",
      "No team season is published yet.");
    for (const id of seasons) {
      const season = await api("GET", gamePath(`/teams/${encodeURIComponent(id)}?limit=20`));
      const detail = h("div", {});
      const pts = season.points;
      el.append(h("div", { class: "card", id: `season-${id}` },
        h("div", { class: "card-head" }, h("h3", {}, season.name),
          h("span", { class: `badge ${season.status}` }, season.status),
          h("span", { class: "muted small" },
            `${fmtTime(season.starts_at)} → ${fmtTime(season.ends_at)} · teams of ` +
            `${season.min_size}–${season.max_size} · feed ${pts.feed}, check-in ` +
            `${pts.checkin}, order ${pts.order} points`)),
        teamsTable(ctx, season, detail), detail));
    }
  }

  function addForm(ctx, el) {
    const { h, field } = ctx;
    const now = Math.floor(Date.now() / 1000);
    const num = (id, value) => h("input", { id, type: "number", value, min: "0" });
    const idIn = h("input", { id: "teams-new-id", placeholder: "d11-build" });
    const nameIn = h("input", { id: "teams-new-name", placeholder: "Double 11 team build" });
    const daysIn = num("teams-new-days", "10");
    const sizeIn = num("teams-new-size", "5");
    const feedIn = num("teams-new-feed", "1");
    const checkinIn = num("teams-new-checkin", "5");
    const orderIn = num("teams-new-order", "50");
    const add = () => {
      const id = idIn.value.trim();
      if (!ID.test(id)) throw new Error("Season id: lower-case letters, digits, - and _.");
      ctx.addToDraft("teams", id, {
        name: nameIn.value.trim() || id, starts_at: now,
        ends_at: now + 86400 * Math.max(1, Number(daysIn.value) || 10),
        max_size: Math.min(50, Math.max(1, Number(sizeIn.value) || 5)),
        points: { feed: Number(feedIn.value) || 0, checkin: Number(checkinIn.value) || 0,
                  order: Number(orderIn.value) || 0 },
        board: `${id}-teams`,
      }, "Season");
    };
    el.append(ctx.draftCard({ title: "Add a team season to the draft",
      buttonId: "teams-new-add", add,
      rows: [[field("Id", idIn), field("Name", nameIn), field("Runs for days", daysIn),
        field("Team size", sizeIn)],
      [field("Points per feed", feedIn), field("per check-in", checkinIn),
        field("per paid order", orderIn)]],
      note: "Milestones, leave and switch rules, auto-match: edit the season in the Draft tab." }));
  }

  window.PetboxConsole.registerPlay({
    name: "teams",
    title: "Teams",
    section: "teams",
    async render(el, ctx) {
      el.append(ctx.draftedNote("teams", "No team season in the draft."));
      addForm(ctx, el);
      await liveSeasons(ctx, el);
    },
  });
})();
