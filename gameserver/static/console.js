/* petbox merchant console: vanilla JS, no build step, talks only to this origin.
 *
 * Everything goes through the documented merchant HTTP API with the API key from
 * sessionStorage. Charts are inline SVG drawn here. The page is organised as tabs
 * (Draft, Simulate, Publish & versions, Stock, Analytics and its event export, Plays)
 * sharing one state object.
 *
 * Plays (registerPlay): each play ships its panel as gameserver/static/play-<name>.js,
 * loaded by one <script src="/console/static/play-<name>.js" defer> line in console.html
 * after this file. It calls
 *
 *   PetboxConsole.registerPlay({
 *     name: "groupbuy",              // unique, [a-z0-9-]
 *     title: "Group buy",            // the button in the Plays tab
 *     section: "groupbuys",          // optional: the top-level config key it owns
 *     async render(el, ctx) { ... }, // draw into el (emptied first); called when the
 *   });                              // play is shown and when the game changes
 *
 * ctx gives: game, merchant, api(method, path, body, {idempotencyKey, auth}) (throws
 * ApiError {status, code, message, details}), gamePath(suffix) (the admin path of the
 * game), h(tag, attrs, ...children), clear(el, ...children), toast(message, kind),
 * errorBox(e) (an element showing an ApiError), fmtInt, fmtFen, fmtPct, fmtTime(sec) (a date
 * and time in the game's zone, zone named), parseTime(text) (an <input type=
 * "datetime-local"> value read in the game's zone, as seconds; null if empty), timezone
 * (the game's zone), confirm(title, content, okLabel) (the console's OK/Cancel dialog,
 * resolves true on OK), draftSection(key) (the key's value in the draft editor, or undefined),
 * setDraftSection(key, value) (writes it into the draft editor: the merchant saves and
 * publishes as usual), liveConfig() (the published config, or null), newKey() (an
 * Idempotency-Key), refresh() (render again), and what every play's panel is made of:
 * publicPath(kind, id) (a play's public read, ?merchant= included), field(label, input),
 * draftedNote(section, none, attrs) (the section's ids in the draft, or `none`),
 * addToDraft(section, id, value, noun) (put one entry in the draft, say so, render
 * again; throws, changing nothing, when the draft has that id already) and draftCard({title, rows, note, buttonId, add}) (the "Add to draft" form:
 * rows of fields, a button that runs add() and toasts what it throws), and
 * publishedIds(el, section, none) (the ids of the live config's section; none
 * published: `none` shown in el and []). A form that edits a whole section has
 * rewardEditor(prefix, label, value, {coupon}) (inputs for a reward or a cost of the
 * draft's currencies, items and coupons; its element's read(path) gives {value,
 * problems}), readInt(input, path, min, max, problems, empty) (a whole number checked as
 * the schema checks it), showProblems(box, problems, scope) (a form's refusals, inputs
 * marked aria-invalid, the first focused), busy(button, fn) and saveDraft() (putGameDraft
 * of the editor; a 422 throws with the server's problems). setDraftSection(key, undefined)
 * takes the section out.
 */
"use strict";

(() => {
  const KEY_STORAGE = "petbox.console.apiKey";
  const GAME_STORAGE = "petbox.console.game";
  const TABS = ["draft", "simulate", "versions", "stock", "analytics", "plays"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------- state

  const S = {
    key: null,
    merchant: null,
    games: [],
    game: null,
    tz: null,               // the game's time zone (fmtTime, parseTime)
    tab: "draft",
    draft: {
      savedText: "",        // what the server has (or the live copy we started from)
      source: "draft",      // "draft" | "live" | "new"
      serverProblems: [],   // problems from the last save / load
      problemsText: "",     // the editor text those problems are about
      syntax: null,         // {message, pos} when the editor is not JSON
      parsed: null,         // {value, spans} of the editor text when it is JSON
    },
    versions: null,         // listGameVersions body
    loaded: {},             // tab → game it was last loaded for
    stockLoading: null,     // {game, done} while a stock table request is in flight
    stockSeq: 0,            // the newest stock load started (only it draws)
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  /** Build an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  const nf = new Intl.NumberFormat();
  const fmtInt = (n) => (n === null || n === undefined ? "—" : nf.format(n));

  /** A probability as a percentage with enough digits to tell small odds apart. */
  function fmtPct(p, digits) {
    if (p === null || p === undefined || Number.isNaN(p)) return "—";
    const x = p * 100;
    if (digits === undefined) {
      digits = x === 0 ? 0 : x >= 1 ? 2 : x >= 0.1 ? 3 : 4;
    }
    return `${x.toFixed(digits)}%`;
  }

  const fmtFen = (fen) => `¥${(fen / 100).toFixed(2)}`;

  // Times are shown and typed in the game's time zone (its config's "timezone", S.tz),
  // whatever zone the browser is in: a 零点 sale set at 00:00 is midnight there, and a
  // merchant's laptop on UTC must neither show it as 16:00 nor schedule it 8 h late.
  const DEFAULT_TZ = "Asia/Shanghai";  // the config schema's default
  const timeFormats = new Map();

  function timeFormat(kind) {
    const key = `${kind} ${S.tz}`;
    if (!timeFormats.has(key)) {
      const opts = kind === "show"
        ? { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
          hourCycle: "h23", timeZoneName: "short" }
        : { year: "numeric", month: "numeric", day: "numeric", hour: "numeric",
          minute: "numeric", second: "numeric", hourCycle: "h23" };
      let format;
      try {
        format = new Intl.DateTimeFormat(kind === "show" ? undefined : "en-US",
          { ...opts, timeZone: S.tz || undefined });
      } catch (e) {  // a zone this browser does not know: its own, still labelled
        format = new Intl.DateTimeFormat(kind === "show" ? undefined : "en-US", opts);
      }
      timeFormats.set(key, format);
    }
    return timeFormats.get(key);
  }

  /** Seconds since the epoch as a date and 24-hour time in the game's zone, zone named. */
  function fmtTime(sec) {
    if (!sec) return "—";
    return timeFormat("show").format(new Date(sec * 1000));
  }

  /** How far the game's zone is ahead of UTC at ``sec``, in seconds. */
  function zoneOffset(sec) {
    const p = {};
    for (const part of timeFormat("parts").formatToParts(new Date(sec * 1000))) {
      p[part.type] = Number(part.value);
    }
    return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second) / 1000 - sec;
  }

  /** A wall-clock time typed as "2026-11-11T00:00" (an <input type="datetime-local">)
   * read in the game's zone, as seconds since the epoch; null when empty or malformed. */
  function parseTime(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text || "");
    if (!m) return null;
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) / 1000;
    // The offset at the guess, then at the answer: right across a daylight-saving change.
    return wall - zoneOffset(wall - zoneOffset(wall));
  }

  function fmtValue(v) {
    if (v === undefined) return "";
    const text = JSON.stringify(v);
    return text.length > 80 ? `${text.slice(0, 77)}…` : text;
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  function toast(message, kind = "ok") {
    const el = h("div", { class: `toast ${kind}` }, message);
    const box = $("toasts");
    box.append(el);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => el.classList.add("leaving"), 3800);
    setTimeout(() => el.remove(), 4300);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  /** A request petbox refused for the moment (503 overloaded/unavailable, 429) is sent
   * again after the Retry-After it names, up to API_RETRIES times, as the JS SDK does:
   * a merchant should not have to click again through a moment of overload. Only what
   * cannot apply twice is resent: reads, and writes that carry an Idempotency-Key. The
   * Retry-After is waited in full; one longer than API_MAX_WAIT_S is shown at once
   * rather than sent again before petbox said. */
  const API_RETRIES = 3;
  const API_MAX_WAIT_S = 5;

  async function api(method, path, body, options = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await apiOnce(method, path, body, options);
      } catch (e) {
        const wait = e instanceof ApiError ? e.retryAfter || 1 : 0;
        const again = e instanceof ApiError && (e.status === 503 || e.status === 429) &&
          (method === "GET" || options.idempotencyKey) && attempt < API_RETRIES &&
          wait <= API_MAX_WAIT_S;
        if (!again) throw e;
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      }
    }
  }

  async function apiOnce(method, path, body, { auth = true, idempotencyKey = null } = {}) {
    const headers = {};
    if (auth) headers.Authorization = `Bearer ${S.key}`;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = typeof body === "string" ? body : JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", `Could not reach petbox (${e.message}). ` +
        "Check your connection and try again.");
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const err = (data && data.error) || {};
      const e = new ApiError(resp.status, err.code || `http_${resp.status}`,
        err.message || resp.statusText || "request failed", err.details);
      e.retryAfter = Number(resp.headers.get("Retry-After")) || 0;
      if (resp.status === 401 && auth && S.merchant) {
        signOut("Your API key was not accepted any more. Please sign in again.");
      }
      throw e;
    }
    return data;
  }

  const gamePath = (suffix = "") =>
    `/v1/admin/games/${encodeURIComponent(S.game)}${suffix}`;

  /** An error as a readable block: message, problems with paths, code and status. */
  function errorContent(e) {
    if (!(e instanceof ApiError)) return [h("strong", {}, String(e && e.message || e))];
    const out = [h("strong", {}, e.message)];
    const problems = e.details.problems;
    if (Array.isArray(problems) && problems.length) {
      out.push(h("ul", { class: "problem-mini" }, problems.map((p) =>
        h("li", {}, h("code", {}, p.path), " ", p.message))));
    }
    const extra = Object.entries(e.details)
      .filter(([k]) => k !== "problems")
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    const meta = [e.status ? `HTTP ${e.status}` : null, e.code, ...extra].filter(Boolean);
    out.push(h("div", { class: "error-meta" }, meta.join(" · ")));
    return out;
  }

  function showError(boxId, e) {
    const box = $(boxId);
    if (!e) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    clear(box, errorContent(e));
    box.hidden = false;
  }

  function confirmDialog(title, content, okLabel) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    clear($("confirm-text"), content);
    $("confirm-ok").textContent = okLabel;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok");
        setTimeout(() => $("confirm-text").replaceChildren(), 0);  // after the caller reads it
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      $("confirm-ok").focus();
    });
  }

  async function busy(button, fn) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await fn();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  }

  // ---------------------------------------------------------------- JSON with positions

  /** Parse JSON and record where each value sits: path → {start, end, keyStart}.
   * Paths are written as the server writes them: "$", "$.a.b", "$.list[0]".
   * A SyntaxError carries .pos (character offset) for the editor. */
  function parseLocated(text) {
    let i = 0;
    const spans = new Map();
    const STR = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
    const NUM = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

    function fail(message) {
      const e = new SyntaxError(message);
      e.pos = i;
      throw e;
    }
    function ws() {
      while (i < text.length && " \t\n\r".includes(text[i])) i++;
    }
    function str() {
      STR.lastIndex = i;
      const m = STR.exec(text);
      if (!m) fail("unterminated or invalid string");
      i += m[0].length;
      return JSON.parse(m[0]);
    }
    function value(path, keyStart) {
      ws();
      const start = i;
      const c = text[i];
      let v;
      if (c === "{") v = object(path);
      else if (c === "[") v = array(path);
      else if (c === '"') v = str();
      else if (c === "-" || (c >= "0" && c <= "9")) {
        NUM.lastIndex = i;
        const m = NUM.exec(text);
        if (!m) fail("invalid number");
        i += m[0].length;
        v = Number(m[0]);
      } else if (text.startsWith("true", i)) { i += 4; v = true; }
      else if (text.startsWith("false", i)) { i += 5; v = false; }
      else if (text.startsWith("null", i)) { i += 4; v = null; }
      else fail(c === undefined ? "unexpected end of text" : `unexpected ${JSON.stringify(c)}`);
      spans.set(path, { start, end: i, keyStart: keyStart ?? start });
      return v;
    }
    function object(path) {
      const out = {};
      i++;
      ws();
      if (text[i] === "}") { i++; return out; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a quoted key");
        const keyStart = i;
        const key = str();
        ws();
        if (text[i] !== ":") fail("expected ':' after a key");
        i++;
        out[key] = value(`${path}.${key}`, keyStart);
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "}") { i++; return out; }
        fail("expected ',' or '}'");
      }
    }
    function array(path) {
      const out = [];
      i++;
      ws();
      if (text[i] === "]") { i++; return out; }
      for (;;) {
        out.push(value(`${path}[${out.length}]`));
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "]") { i++; return out; }
        fail("expected ',' or ']'");
      }
    }
    const v = value("$");
    ws();
    if (i < text.length) fail("unexpected text after the end of the JSON");
    return { value: v, spans };
  }

  function lineCol(text, pos) {
    const before = text.slice(0, pos);
    const line = before.split("\n").length;
    return { line, col: pos - before.lastIndexOf("\n") };
  }

  /** The span of ``path`` or of its nearest ancestor present in the text. */
  function spanOf(path) {
    const parsed = S.draft.parsed;
    if (!parsed) return null;
    let p = path;
    while (p) {
      const span = parsed.spans.get(p);
      if (span) return span;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut > 0 ? p.slice(0, cut) : p === "$" ? "" : "$";
    }
    return null;
  }

  // ---------------------------------------------------------------- sign in / out

  async function signIn(key) {
    S.key = key;
    const body = await api("GET", "/v1/admin/games");
    S.merchant = body.merchant;
    S.games = body.games;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("merchant-name").textContent = body.name && body.name !== body.merchant
      ? `${body.name} (${body.merchant})` : body.merchant;
    $("login").hidden = true;
    $("app").hidden = false;
    renderGamePicker();
    const wanted = sessionStorage.getItem(GAME_STORAGE);
    const first = S.games.find((g) => g.game === wanted) || S.games[0];
    const hashTab = location.hash.slice(1);
    selectTab(TABS.includes(hashTab) ? hashTab : "draft", false);
    if (first) await selectGame(first.game);
    else clear($("draft-source"), "This merchant has no games yet.");
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    S.key = null;
    S.merchant = null;
    S.game = null;
    S.loaded = {};
    $("app").hidden = true;
    $("login").hidden = false;
    const err = $("login-error");
    err.textContent = message || "";
    err.hidden = !message;
    $("api-key").value = "";
    $("api-key").focus();
  }

  function initLogin() {
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = $("api-key").value.trim();
      const err = $("login-error");
      if (!key) {
        err.textContent = "Enter your API key.";
        err.hidden = false;
        return;
      }
      if (!key.startsWith("pbk_")) {
        err.textContent = "Merchant API keys start with pbk_ (a shopper token will not work).";
        err.hidden = false;
        return;
      }
      err.hidden = true;
      await busy($("login-submit"), async () => {
        $("login-submit").textContent = "Signing in…";
        try {
          await signIn(key);
        } catch (e) {
          S.key = null;
          err.textContent = e.status === 401
            ? "That API key was not accepted. Check it and try again."
            : e.message;
          err.hidden = false;
        }
      });
    });
    $("logout").addEventListener("click", () => signOut(""));
  }

  // ---------------------------------------------------------------- games and tabs

  function renderGamePicker() {
    const picker = $("game-picker");
    clear(picker, S.games.map((g) => h("option", { value: g.game }, g.game)));
    picker.disabled = S.games.length === 0;
  }

  function updateLiveBadge() {
    const g = S.games.find((x) => x.game === S.game);
    const badge = $("live-badge");
    if (!g) {
      badge.textContent = "";
      return;
    }
    badge.textContent = g.live_version ? `live v${g.live_version}` : "not published";
    badge.className = g.live_version ? "badge live" : "badge";
  }

  async function refreshGames() {
    const body = await api("GET", "/v1/admin/games");
    S.games = body.games;
    const current = S.game;
    renderGamePicker();
    $("game-picker").value = current;
    updateLiveBadge();
  }

  async function selectGame(game) {
    if (S.game && S.game !== game && isDirty()) {
      const ok = await confirmDialog("Discard unsaved edits?",
        h("p", {}, `Your edits to ${S.game}'s draft are not saved.`), "Discard");
      if (!ok) {
        $("game-picker").value = S.game;
        return;
      }
    }
    S.game = game;
    S.loaded = {};
    S.versions = null;
    sessionStorage.setItem(GAME_STORAGE, game);
    $("game-picker").value = game;
    updateLiveBadge();
    await loadTimezone(game);
    await Promise.all([loadDraft(), loadVersions()]);
    await loadTab(S.tab);
  }

  /** S.tz for ``game``: the live config's zone, else the saved draft's, else the
   * schema's default (a game with neither shows and takes times in it). */
  async function loadTimezone(game) {
    let config = null;
    try {
      config = await liveConfig();
      if (!config) config = (await api("GET", gamePath("/draft"))).config;
    } catch (e) {
      if (e.status !== 404) toast(`Could not read the game's time zone: ${e.message}`, "bad");
    }
    if (game === S.game) S.tz = (config && config.timezone) || DEFAULT_TZ;
  }

  function selectTab(tab, focus = true) {
    S.tab = tab;
    for (const name of TABS) {
      const button = $(`tab-${name}`);
      const on = name === tab;
      button.setAttribute("aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
      $(`panel-${name}`).hidden = !on;
    }
    if (focus) $(`tab-${tab}`).focus();
    history.replaceState(null, "", `#${tab}`);
    if (S.game) loadTab(tab);
  }

  async function loadTab(tab) {
    if (!S.game) return;
    const game = S.game;
    try {
      if (tab === "simulate") renderSimForm();
      if (tab === "versions") {
        await loadVersions();
        await renderPublishChanges();
        const from = $("diff-from").value;
        const to = $("diff-to").value;
        if (from && to && from !== to) await showDiff(from, to, false);
      }
      if (tab === "stock" && S.loaded.stock !== game) await loadStock();
      if (tab === "analytics" && S.loaded.analytics !== game) await loadAnalytics();
      if (tab === "plays") await renderPlays();
    } catch (e) {
      toast(e.message, "bad");
    }
  }

  function initTabs() {
    const list = document.querySelector('[role="tablist"]');
    list.addEventListener("click", (ev) => {
      const tab = ev.target.closest("[role=tab]");
      if (tab) selectTab(tab.dataset.tab);
    });
    list.addEventListener("keydown", (ev) => {
      const at = TABS.indexOf(S.tab);
      const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 };
      if (!(ev.key in moves)) return;
      ev.preventDefault();
      selectTab(TABS[(moves[ev.key] + TABS.length) % TABS.length]);
    });
    $("game-picker").addEventListener("change", (ev) => selectGame(ev.target.value));
  }

  // ---------------------------------------------------------------- plays

  const PLAYS = [];
  let currentPlay = null;

  function registerPlay(play) {
    if (!play || !/^[a-z0-9-]{1,32}$/.test(play.name || "") || typeof play.render !== "function") {
      throw new Error("registerPlay wants {name: [a-z0-9-], title, render(el, ctx)}");
    }
    if (PLAYS.some((p) => p.name === play.name)) return;
    PLAYS.push(play);
    if (S.tab === "plays" && S.game) renderPlays();
  }

  function draftValue() {
    return S.draft.parsed && S.draft.parsed.value && typeof S.draft.parsed.value === "object"
      ? S.draft.parsed.value : null;
  }

  /** Write ``value`` as the draft's top-level ``key`` (undefined: take the key out, as a
   * section that is off is absent: none accepts null). */
  function setDraftSection(key, value) {
    if (value !== undefined && setValueAt(`$.${key}`, value)) return;
    const config = draftValue();
    if (!config) throw new Error("The draft is not valid JSON; fix it in the Draft tab first.");
    const next = { ...config, [key]: value };
    if (value === undefined) delete next[key];
    editor().value = JSON.stringify(next, null, 2);
    onEditorChange();
  }

  async function liveConfig() {
    const g = S.games.find((x) => x.game === S.game);
    if (!g || !g.live_version) return null;
    const config = (await api("GET", gamePath(`/versions/${g.live_version}`))).config;
    // A publish may have moved the zone; the plays read this before drawing times.
    if (g.game === S.game) S.tz = config.timezone || DEFAULT_TZ;
    return config;
  }

  function draftedNote(section, none, attrs = {}) {
    const drafted = Object.keys((draftValue() || {})[section] || {});
    return h("p", { class: "muted small", ...attrs }, drafted.length
      ? `In the draft: ${drafted.join(", ")}` : none);
  }

  function draftCard({ title, rows, note, buttonId, add }) {
    const onclick = () => {
      try { add(); } catch (e) { toast(e.message, "bad"); }
    };
    return h("div", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, title)),
      rows.map((fields) => h("div", { class: "form-row" }, fields)),
      note ? h("p", { class: "muted small" }, note) : null,
      h("button", { class: "btn primary", type: "button", id: buttonId, onclick },
        "Add to draft"));
  }

  async function publishedIds(el, section, none) {
    const live = await liveConfig();
    const ids = Object.keys((live && live[section]) || {});
    if (!ids.length) el.append(h("p", { class: "muted" }, none));
    return ids;
  }

  // ---------------------------------------------------------------- play forms

  /** A whole number typed into ``input`` (empty: ``empty``), checked as the config schema
   * checks it; a refusal is pushed onto ``problems`` as {input, path, message}, worded as
   * the server words it, and null returned. */
  function readInt(input, path, min, max, problems, empty = null) {
    const raw = input.value.trim();
    const n = raw === "" && !input.validity.badInput ? empty : Number(raw);
    let message = null;
    if (n === null || input.validity.badInput || !Number.isInteger(n)) message = "must be an integer";
    else if (min !== null && n < min) message = `must be ≥ ${min}`;
    else if (max !== null && n > max) message = `must be ≤ ${max}`;
    if (message === null) return n;
    problems.push({ input, path, message });
    return null;
  }

  /** Show a form's problems ({input?, path, message}) in ``box`` (role=alert), mark their
   * inputs aria-invalid and move the focus to the first; none: clear the box and marks. */
  function showProblems(box, problems, scope) {
    for (const el of (scope || box.parentElement).querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
    }
    if (!problems.length) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    clear(box, h("strong", {}, problems.length === 1 ? "1 problem: nothing was changed."
      : `${problems.length} problems: nothing was changed.`),
    h("ul", { class: "problem-mini" }, problems.map((p) =>
      h("li", {}, h("code", {}, p.path), " ", p.message))));
    box.hidden = false;
    for (const p of problems) if (p.input) p.input.setAttribute("aria-invalid", "true");
    const first = problems.find((p) => p.input);
    if (first) first.input.focus();
  }

  const MAX_GRANT = 1_000_000_000;  // economy/rewards.py: an amount in a reward or a cost

  /** Inputs for a reward (or, with {coupon: false}, a cost) as economy/rewards.py has it:
   * an amount per currency of ``config``, lines of item and count, and a coupon. Ids, not
   * names, are what the config stores; an id the config does not define (a currency taken
   * out of it since) is kept and marked, for the server to refuse. The element's
   * read(path) gives {value, problems}: value has only what is granted (no zero amounts,
   * no empty maps), problems are readInt's. */
  function rewardEditor(prefix, label, value, config, { coupon = true } = {}) {
    const v = value && typeof value === "object" ? value : {};
    const known = (section) => Object.keys(config[section] || {});
    const nameOf = (section, id) => {
      const entry = (config[section] || {})[id];
      return entry && entry.name ? `${entry.name} (${id})` : `${id} (not in ${section})`;
    };
    const currencies = [...new Set([...known("currencies"), ...Object.keys(v.currency || {})])];
    const itemIds = [...new Set([...known("items"), ...Object.keys(v.items || {})])];
    const amounts = currencies.map((id) => {
      const input = h("input", { type: "number", min: "0", step: "1", inputmode: "numeric",
        id: `${prefix}-cur-${id}`, value: (v.currency || {})[id] ?? "", placeholder: "0" });
      return { id, input, el: h("label", { class: "field" }, nameOf("currencies", id), input) };
    });
    const lines = h("div", { class: "reward-items" });
    let serial = 0;
    const addLine = (item, count) => {
      const n = serial++;
      const select = h("select", { id: `${prefix}-item${n}`, "aria-label": `${label}: item` },
        itemIds.map((id) => h("option", { value: id }, nameOf("items", id))));
      if (item) select.value = item;
      const countIn = h("input", { type: "number", min: "0", step: "1", inputmode: "numeric",
        id: `${prefix}-item${n}-count`, value: count ?? 1, "aria-label": `${label}: how many` });
      const line = h("div", { class: "reward-item" }, select, countIn);
      line.append(h("button", { type: "button", class: "btn small ghost",
        "aria-label": `${label}: remove this item`, title: "Remove this item",
        onclick: () => { line.remove(); addButton.focus(); } }, "×"));
      lines.append(line);
      return select;
    };
    const addButton = h("button", { type: "button", class: "btn small", id: `${prefix}-add-item`,
      disabled: itemIds.length ? null : true, "aria-label": `${label}: add an item`,
      title: itemIds.length ? "" : "The draft defines no items",
      onclick: () => addLine(itemIds[0], 1).focus() }, "+ Item");
    for (const [id, count] of Object.entries(v.items || {})) addLine(id, count);
    let couponIn = null;
    if (coupon) {
      const ids = [...new Set([...known("coupons"), ...(v.coupon ? [v.coupon] : [])])];
      couponIn = h("select", { id: `${prefix}-coupon` }, h("option", { value: "" }, "none"),
        ids.map((id) => h("option", { value: id }, nameOf("coupons", id))));
      couponIn.value = v.coupon || "";
    }
    const el = h("div", { class: "reward-editor" },
      h("div", { class: "reward-amounts" }, amounts.map((a) => a.el),
        couponIn ? h("label", { class: "field" }, "Coupon", couponIn) : null),
      h("div", { class: "reward-items-head" }, h("span", { class: "small strong" }, "Items"),
        addButton), lines);
    el.read = (path) => {
      const problems = [];
      const out = {};
      const currency = {};
      for (const a of amounts) {
        const n = readInt(a.input, `${path}.currency.${a.id}`, 0, MAX_GRANT, problems, 0);
        if (n) currency[a.id] = n;
      }
      const items = {};
      const seen = new Set();
      for (const line of lines.children) {
        const [select, countIn] = line.querySelectorAll("select, input");
        const p = `${path}.items.${select.value}`;
        const n = readInt(countIn, p, 0, MAX_GRANT, problems, 0);
        if (seen.has(select.value)) {
          problems.push({ input: select, path: p, message: "is listed twice" });
        } else if (n) items[select.value] = n;
        seen.add(select.value);
      }
      if (Object.keys(currency).length) out.currency = currency;
      if (Object.keys(items).length) out.items = items;
      if (couponIn && couponIn.value) out.coupon = couponIn.value;
      return { value: out, problems };
    };
    return el;
  }

  function playContext(play) {
    const refresh = () => showPlay(play.name);
    return {
      game: S.game, merchant: S.merchant, api, gamePath, h, clear, toast, fmtInt, fmtFen,
      fmtPct, fmtTime, parseTime, timezone: S.tz, liveConfig, setDraftSection,
      errorBox: (e) => h("div", { class: "error-box", role: "alert" }, errorContent(e)),
      draftSection: (key) => { const c = draftValue(); return c ? c[key] : undefined; },
      newKey: () => newIdempotencyKey("play"),
      refresh, draftedNote, draftCard, publishedIds, busy, readInt, showProblems,
      rewardEditor: (prefix, label, value, options) =>
        rewardEditor(prefix, label, value, draftValue() || {}, options),
      // Saves the editor as the draft (putGameDraft); a 422 throws with the server's
      // problems, which the Draft tab lists too.
      saveDraft: async () => {
        const body = await saveDraft();
        loadVersions().catch(() => {});  // the Publish tab's "has a draft" follows
        return body;
      },
      field: (label, input) => h("label", { class: "field" }, label, input),
      publicPath: (kind, id) => `/v1/games/${encodeURIComponent(S.game)}/${kind}/` +
        `${encodeURIComponent(id)}?merchant=${encodeURIComponent(S.merchant)}`,
      confirm: confirmDialog,
      addToDraft: (section, id, value, noun) => {
        const drafted = (draftValue() || {})[section] || {};
        // Adding never replaces: the entry with that id (a published one is in the draft
        // too) has fields these short forms do not set, which would be dropped unseen.
        if (Object.prototype.hasOwnProperty.call(drafted, id)) {
          throw new Error(`${noun} ${id} is already in the draft: pick another id, or ` +
            "change that one in the Draft tab.");
        }
        setDraftSection(section, { ...drafted, [id]: value });
        toast(`${noun} ${id} added to the draft: save and publish it in the Draft tab.`);
        refresh();
      },
    };
  }

  async function renderPlays() {
    const nav = $("plays-nav");
    $("plays-empty").hidden = PLAYS.length > 0;
    clear(nav, PLAYS.map((p) => h("button", {
      type: "button", class: "btn ghost", id: `play-${p.name}`, "data-play": p.name,
      "aria-pressed": p.name === currentPlay ? "true" : "false",
      onclick: () => showPlay(p.name),
    }, p.title || p.name)));
    if (PLAYS.length) await showPlay(currentPlay && PLAYS.some((p) => p.name === currentPlay)
      ? currentPlay : PLAYS[0].name);
  }

  async function showPlay(name) {
    const play = PLAYS.find((p) => p.name === name);
    if (!play || !S.game) return;
    currentPlay = name;
    for (const b of $("plays-nav").children) {
      b.setAttribute("aria-pressed", b.dataset.play === name ? "true" : "false");
    }
    // Each render draws into a box of its own: a slower earlier render that is still
    // awaiting then appends into its detached box, never beside the newer one.
    const box = h("div", { class: "panel" });
    $("play-body").replaceChildren(box);
    showError("plays-error", null);
    try {
      await play.render(box, playContext(play));
    } catch (e) {
      if (box.isConnected) showError("plays-error", e);
    }
  }

  window.PetboxConsole = Object.freeze({ registerPlay });

  // ---------------------------------------------------------------- draft editor

  const editor = () => $("draft-editor");
  const isDirty = () => editor().value !== S.draft.savedText;

  async function loadDraft() {
    const game = S.game;
    let text;
    let problems = [];
    let source;
    let note;
    try {
      const body = await api("GET", gamePath("/draft"));
      text = JSON.stringify(body.config, null, 2);
      problems = body.problems || [];
      source = "draft";
      note = `Saved draft · last saved ${fmtTime(body.updated_at)} · checksum ` +
        `${String(body.checksum || "").slice(0, 10)}`;
    } catch (e) {
      if (e.status !== 404) throw e;
      const g = S.games.find((x) => x.game === game);
      if (g && g.live_version) {
        const v = await api("GET", gamePath(`/versions/${g.live_version}`));
        text = JSON.stringify(v.config, null, 2);
        source = "live";
        note = `No draft yet: this is a copy of live v${g.live_version}. ` +
          "Saving creates the draft; nothing goes live until you publish.";
      } else {
        text = "{\n}";
        source = "new";
        note = "No draft and nothing published yet.";
      }
    }
    if (game !== S.game) return;
    S.draft.savedText = text;
    S.draft.source = source;
    S.draft.serverProblems = problems;
    S.draft.problemsText = text;
    $("draft-source").textContent = note;
    editor().value = text;
    onEditorChange();
  }

  function onEditorChange() {
    const text = editor().value;
    try {
      S.draft.parsed = parseLocated(text);
      S.draft.syntax = null;
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      S.draft.parsed = null;
      const lc = lineCol(text, e.pos ?? 0);
      S.draft.syntax = { message: e.message, pos: e.pos ?? 0, ...lc };
    }
    renderGutter();
    renderDraftState();
    renderProblems();
    renderOddsEditor();
  }

  function renderGutter() {
    const lines = editor().value.split("\n").length;
    const gutter = $("draft-gutter");
    if (gutter.dataset.lines !== String(lines)) {
      gutter.textContent = Array.from({ length: lines }, (_, n) => n + 1).join("\n");
      gutter.dataset.lines = String(lines);
    }
    gutter.scrollTop = editor().scrollTop;
  }

  function renderDraftState() {
    const chip = $("draft-state");
    if (S.draft.syntax) {
      chip.textContent = "Not valid JSON";
      chip.className = "chip bad";
    } else if (isDirty()) {
      chip.textContent = "Unsaved changes";
      chip.className = "chip warn";
    } else if (S.draft.source === "draft") {
      chip.textContent = "Saved";
      chip.className = "chip ok";
    } else {
      chip.textContent = S.draft.source === "live" ? "Copy of live" : "Empty";
      chip.className = "chip";
    }
    const save = $("draft-save");
    save.disabled = !!S.draft.syntax;
  }

  function jumpTo(path, pos) {
    const ta = editor();
    let start = pos;
    let end = pos;
    if (path !== undefined) {
      const span = spanOf(path);
      if (!span) return;
      start = span.keyStart;
      end = span.end;
    }
    ta.focus();
    ta.setSelectionRange(start, Math.max(end, start + 1));
    const { line } = lineCol(ta.value, start);
    const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (line - 4) * lineHeight);
    renderGutter();
  }

  function renderProblems() {
    const box = $("draft-problems");
    const count = $("problem-count");
    const items = [];
    if (S.draft.syntax) {
      const s = S.draft.syntax;
      items.push({ path: null, pos: s.pos, label: `line ${s.line}, column ${s.col}`,
        message: `JSON syntax: ${s.message}` });
    }
    for (const p of S.draft.serverProblems) {
      items.push({ path: p.path, label: p.path, message: p.message });
    }
    if (!items.length) {
      count.textContent = "valid";
      count.className = "chip ok";
      clear(box, h("p", { class: "all-good" }, h("span", { "aria-hidden": "true" }, "✓ "),
        isDirty() ? "JSON is well-formed. Save to validate it against the game schema."
          : "No problems: this config is valid."));
      return;
    }
    count.textContent = `${items.length} problem${items.length > 1 ? "s" : ""}`;
    count.className = "chip bad";
    const stale = editor().value !== S.draft.problemsText && S.draft.serverProblems.length
      ? h("p", { class: "muted small" }, "From the last save; save again to re-check.") : null;
    clear(box, stale, h("ol", { class: "problems" }, items.map((it) => h("li", {},
      h("button", {
        type: "button", class: "problem",
        title: "Show this place in the editor",
        onclick: () => (it.path ? jumpTo(it.path) : jumpTo(undefined, it.pos)),
      }, h("code", {}, it.label), h("span", {}, it.message))))));
  }

  /** Replace the value at ``path`` in the editor text, keeping the rest as typed. */
  function setValueAt(path, newValue) {
    const span = S.draft.parsed && S.draft.parsed.spans.get(path);
    if (!span) return false;
    const ta = editor();
    const text = ta.value;
    // Indented as the line it starts on, so a section a form writes reads like the rest.
    const indent = /^[ \t]*/.exec(text.slice(text.lastIndexOf("\n", span.start - 1) + 1))[0];
    const json = JSON.stringify(newValue, null, 2).replace(/\n/g, `\n${indent}`);
    ta.value = text.slice(0, span.start) + json + text.slice(span.end);
    onEditorChange();
    return true;
  }

  function seriesOf(config) {
    const series = config && config.boxes && config.boxes.series;
    return series && typeof series === "object" ? series : {};
  }

  /** The entries of a series with their base probability (weight / total weight). */
  function entriesOf(series) {
    const rows = [];
    for (const kind of ["items", "prizes"]) {
      for (const [id, e] of Object.entries((series && series[kind]) || {})) {
        rows.push({ id, kind, tier: e && e.tier, weight: e && e.weight,
          name: e && e.name });
      }
    }
    const ok = (w) => typeof w === "number" && w >= 0;
    const total = rows.reduce((t, r) => t + (ok(r.weight) ? r.weight : 0), 0);
    const valid = rows.every((r) => ok(r.weight));
    for (const r of rows) r.base = valid && total > 0 ? r.weight / total : null;
    return rows;
  }

  function renderOddsEditor() {
    const box = $("odds-editor");
    if (!S.draft.parsed) {
      clear(box, h("p", { class: "muted small" }, "Fix the JSON to edit odds here."));
      return;
    }
    const all = seriesOf(S.draft.parsed.value);
    const ids = Object.keys(all);
    if (!ids.length) {
      clear(box, h("p", { class: "muted small" }, "This config has no blind-box series."));
      return;
    }
    const active = document.activeElement;
    const activeId = active && active.dataset ? active.dataset.weightPath : null;
    clear(box, ids.map((sid) => {
      const rows = entriesOf(all[sid]);
      return h("table", { class: "odds" },
        h("caption", {}, (all[sid] && all[sid].name) || sid, " ",
          h("span", { class: "muted small" }, `(${sid})`)),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Entry"),
          h("th", { scope: "col" }, "Tier"), h("th", { scope: "col", class: "num" }, "Weight"),
          h("th", { scope: "col", class: "num" }, "Base odds"))),
        h("tbody", {}, rows.map((r) => {
          const path = `$.boxes.series.${sid}.${r.kind}.${r.id}.weight`;
          const input = h("input", {
            type: "number", min: "0", step: "1", value: r.weight ?? "", class: "weight",
            id: `w-${sid}-${r.kind}-${r.id}`, "data-weight-path": path,
            "aria-label": `Weight of ${r.id} in ${sid}`,
          });
          input.addEventListener("change", () => {
            const n = Number(input.value);
            if (input.value === "" || !Number.isInteger(n) || n < 0) {
              toast(`Weight of ${r.id} must be a whole number ≥ 0`, "bad");
              input.value = r.weight ?? "";
              return;
            }
            setValueAt(path, n);
          });
          return h("tr", {},
            h("th", { scope: "row" }, r.id, r.kind === "prizes"
              ? h("span", { class: "tag" }, "prize") : null),
            h("td", {}, r.tier || "—"),
            h("td", { class: "num" }, input),
            h("td", { class: "num" }, h("span", { class: "bar-cell" },
              h("span", { class: "mini-bar", "data-w": r.base ?? 0 }), fmtPct(r.base))));
        })));
    }));
    for (const bar of box.querySelectorAll(".mini-bar")) {
      const w = Number(bar.dataset.w);
      if (w > 0) bar.style.width = `${Math.max(2, Math.round(w * 80))}px`;
      else bar.hidden = true;
    }
    if (activeId) {
      const again = box.querySelector(`[data-weight-path="${CSS.escape(activeId)}"]`);
      if (again) again.focus();
    }
  }

  async function saveDraft() {
    if (S.draft.syntax) {
      jumpTo(undefined, S.draft.syntax.pos);
      throw new Error("The draft is not valid JSON; fix it first.");
    }
    const text = editor().value;
    try {
      // one key per save, resent by api() on a 503 or 429: saved once however it ends
      const body = await api("PUT", gamePath("/draft"), text,
        { idempotencyKey: newIdempotencyKey("draft") });
      S.draft.savedText = text;
      S.draft.source = "draft";
      S.draft.serverProblems = [];
      $("draft-source").textContent = `Saved draft · last saved ${fmtTime(body.updated_at)} · ` +
        `checksum ${String(body.checksum || "").slice(0, 10)}`;
      const g = S.games.find((x) => x.game === S.game);
      if (g) g.has_draft = true;
      onEditorChange();
      return body;
    } catch (e) {
      if (e.status === 422 && Array.isArray(e.details.problems)) {
        S.draft.serverProblems = e.details.problems;
        S.draft.problemsText = text;
        onEditorChange();
      }
      throw e;
    }
  }

  function initDraft() {
    const ta = editor();
    const changed = debounce(onEditorChange, 200);
    ta.addEventListener("input", changed);
    ta.addEventListener("scroll", () => { $("draft-gutter").scrollTop = ta.scrollTop; });
    const cursor = () => {
      const { line, col } = lineCol(ta.value, ta.selectionStart);
      $("draft-cursor").textContent = `Ln ${line}, Col ${col}`;
    };
    ta.addEventListener("keyup", cursor);
    ta.addEventListener("click", cursor);
    ta.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
        ev.preventDefault();
        $("draft-save").click();
      }
    });
    $("draft-format").addEventListener("click", () => {
      onEditorChange();
      if (S.draft.syntax) {
        toast("Cannot format: the text is not valid JSON", "bad");
        jumpTo(undefined, S.draft.syntax.pos);
        return;
      }
      ta.value = JSON.stringify(S.draft.parsed.value, null, 2);
      onEditorChange();
    });
    $("draft-reload").addEventListener("click", async () => {
      if (isDirty()) {
        const ok = await confirmDialog("Revert the editor?",
          h("p", {}, "Your unsaved edits will be lost."), "Revert");
        if (!ok) return;
      }
      await loadDraft();
      toast("Reloaded the saved draft");
    });
    $("draft-save").addEventListener("click", (ev) => busy(ev.currentTarget, async () => {
      ev.currentTarget.textContent = "Saving…";
      onEditorChange();
      try {
        await saveDraft();
        toast("Draft saved: valid, not live until you publish");
      } catch (e) {
        toast(e.message, "bad");
      }
    }));
  }

  // ---------------------------------------------------------------- simulation

  function configForSim() {
    // Which config the series list comes from: the editor's (draft) when it parses.
    if (S.draft.parsed) return S.draft.parsed.value;
    return null;
  }

  function renderSimForm() {
    const select = $("sim-series");
    const previous = select.value;
    const ids = Object.keys(seriesOf(configForSim()));
    clear(select, ids.map((id) => h("option", { value: id }, id)));
    if (ids.includes(previous)) select.value = previous;
    $("sim-run").disabled = ids.length === 0;
    const cfg = $("sim-config");
    const prevCfg = cfg.value;
    const options = [h("option", { value: "draft" }, "Draft (editor)")];
    const live = S.versions && S.versions.live_version;
    if (live) options.push(h("option", { value: "live" }, `Live (v${live})`));
    for (const v of (S.versions && S.versions.versions) || []) {
      if (v.version !== live) options.push(h("option", { value: String(v.version) }, `v${v.version}`));
    }
    clear(cfg, options);
    if ([...cfg.options].some((o) => o.value === prevCfg)) cfg.value = prevCfg;
    updateSimTotal();
  }

  function updateSimTotal() {
    const players = Number($("sim-players").value) || 0;
    const draws = Number($("sim-draws").value) || 0;
    const total = players * draws;
    const el = $("sim-total");
    el.textContent = `${fmtInt(total)} draws in total (limit 1,000,000)`;
    el.classList.toggle("over", total > 1_000_000);
  }

  async function publishedOdds(series) {
    try {
      return await api("GET", `/v1/games/${encodeURIComponent(S.game)}/boxes/` +
        `${encodeURIComponent(series)}?merchant=${encodeURIComponent(S.merchant)}`,
      undefined, { auth: false });
    } catch (e) {
      if (e.status === 404) return null;  // not published, or the series is new
      throw e;
    }
  }

  async function configOf(ref) {
    if (ref === "draft") return configForSim();
    const number = ref === "live" ? S.versions && S.versions.live_version : Number(ref);
    if (!number) return null;
    return (await api("GET", gamePath(`/versions/${number}`))).config;
  }

  async function runSimulation() {
    showError("sim-error", null);
    const ref = $("sim-config").value || "draft";
    if (ref === "draft" && (isDirty() || S.draft.source !== "draft")) {
      // The server simulates the saved draft: saving is the merchant's call, never silent.
      const ok = await confirmDialog("Save the draft to simulate it?",
        h("p", {}, "The simulation runs the saved draft, and your edits are not saved yet. " +
          "Save them now, or cancel and pick a published version."), "Save and simulate");
      if (!ok) return;
      await saveDraft();
    }
    const body = {
      series: $("sim-series").value,
      version: ref,
      players: Number($("sim-players").value),
      draws: Number($("sim-draws").value),
      batch: Number($("sim-batch").value),
      seed: $("sim-seed").value || "0",
    };
    const started = performance.now();
    const [result, published, config] = await Promise.all([
      api("POST", gamePath("/simulate"), body),
      publishedOdds(body.series),
      configOf(ref),
    ]);
    const seconds = (performance.now() - started) / 1000;
    $("toasts").replaceChildren();  // what they said is stale: they must not cover results
    renderSimResults(result, published, seriesOf(config)[body.series], seconds);
  }

  function statCard(label, value, sub, testid) {
    return h("div", { class: "stat", "data-testid": testid || null },
      h("div", { class: "stat-label" }, label),
      h("div", { class: "stat-value" }, value),
      sub ? h("div", { class: "stat-sub" }, sub) : null);
  }

  function renderSimResults(r, published, seriesConfig, seconds) {
    const entries = entriesOf(seriesConfig);
    const base = Object.fromEntries(entries.map((e) => [e.id, e]));
    const pubItems = Object.fromEntries(((published && published.items) || [])
      .map((it) => [it.id, it]));
    const pubTiers = Object.fromEntries(((published && published.tiers) || [])
      .map((t) => [t.id, t]));
    const pubLabel = published ? `Published odds (live v${published.game_version})`
      : "Published odds (none live)";
    const itemIds = [...new Set([...entries.map((e) => e.id), ...Object.keys(r.items)])];
    const tierIds = [...new Set([...Object.keys(r.tiers), ...Object.keys(pubTiers)])];
    const cs = r.complete_set;
    const price = r.price_per_draw || {};
    const pct = (key) => cs.draws && cs.draws[key] !== null && cs.draws[key] !== undefined
      ? `${fmtInt(cs.draws[key])} draws` : `not within ${fmtInt(r.draws / r.players)}`;
    const soldOut = Object.entries(r.sold_out_at_draw || {});

    const width = chartWidth($("sim-results"), 720, 38);
    // Items and tiers are charted alike: each simulated rate beside its published odds
    // (null where the published table has no such id: the chart writes n/a there).
    const rateChart = (title, ids, simulated, published) => barChart({
      width,
      title,
      categories: ids,
      series: [
        { name: `Simulated (${r.config})`, cls: "s-sim",
          values: ids.map((id) => (simulated[id] ? simulated[id].rate : 0)) },
        { name: pubLabel, cls: "s-pub",
          values: ids.map((id) => (published[id] ? published[id].consolidated_probability : null)) },
      ],
    });
    const itemChart = rateChart("Item rates: simulated vs published odds", itemIds, r.items,
      pubItems);
    const tierChart = rateChart("Tier rates", tierIds, r.tiers, pubTiers);

    const table = h("table", { class: "data", "data-testid": "sim-table" },
      h("caption", { class: "sr-only" }, "Simulated draws per entry"),
      h("thead", {}, h("tr", {},
        ["Entry", "Tier", "Weight", `Base odds (${r.config})`, "Simulated", "Count",
          "Published (live)"].map((t, i) => h("th", { scope: "col", class: i > 1 ? "num" : null }, t)))),
      h("tbody", {}, itemIds.map((id) => h("tr", {},
        h("th", { scope: "row" }, id),
        h("td", {}, (base[id] && base[id].tier) || (pubItems[id] && pubItems[id].rarity) || "—"),
        h("td", { class: "num" }, base[id] ? fmtInt(base[id].weight) : "—"),
        h("td", { class: "num" }, base[id] ? fmtPct(base[id].base) : "—"),
        h("td", { class: "num strong" }, fmtPct(r.items[id] ? r.items[id].rate : 0)),
        h("td", { class: "num" }, fmtInt(r.items[id] ? r.items[id].count : 0)),
        h("td", { class: "num" }, pubItems[id] ? fmtPct(pubItems[id].consolidated_probability) : "—")))));

    clear($("sim-results"),
      h("div", { class: "stats" },
        statCard("Draws simulated", fmtInt(r.draws),
          `${fmtInt(r.players)} players · ${r.config} · ${seconds.toFixed(1)} s`, "sim-draws"),
        statCard("Prize cost per draw", fmtFen(r.prize_cost_fen_per_draw),
          `price ${fmtInt(price.amount)} ${price.currency || price.points || ""}`.trim()),
        statCard("Pity", fmtPct(r.pity.forced_rate),
          `forced · ${fmtPct(r.pity.boosted_rate)} boosted`),
        statCard("Completed the set", `${fmtInt(cs.players)} / ${fmtInt(r.players)}`,
          `${fmtPct(cs.players / Math.max(1, r.players), 1)} of players`),
        statCard("Draws to complete", cs.draws && cs.draws.p50 !== null ? fmtInt(cs.draws.p50) : "—",
          `median · p90 ${pct("p90")} · p99 ${pct("p99")}`),
        soldOut.length ? statCard("Sold out at draw",
          soldOut.map(([k, v]) => `${k}: ${v === null ? "never" : fmtInt(v)}`).join(", "),
          "global draw number that took the last unit") : null),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Items")),
        itemChart,
        soldOut.some(([, v]) => v !== null) ? h("p", { class: "muted small" },
          "Limited prizes that sell out during the run fall back to their fallback item, so " +
          "simulated rates can differ from the published odds (which assume full stock).")
          : null,
        table),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Tiers")),
        tierChart));
  }

  /** Horizontal grouped bars: one group per category, one bar per series. */
  function barChart({ title, categories, series, width = 720 }) {
    const labelW = Math.min(180, Math.max(90, 12 + 7.5 * Math.max(...categories.map((c) => c.length))));
    const barH = 14;
    const gap = 3;
    const groupH = series.length * (barH + gap) + 12;
    const top = 8;
    const height = top + categories.length * groupH + 28;
    const max = Math.max(0.0001, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
    const nice = niceMax(max);
    const plotW = width - labelW - 70;
    const x = (v) => labelW + (v / nice) * plotW;
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
      "aria-label": `${title}. ` + categories.map((c, i) => `${c}: ` +
        series.map((s) => `${s.name} ${fmtPct(s.values[i])}`).join(", ")).join("; "),
    });
    const ticks = 4;
    for (let t = 0; t <= ticks; t++) {
      const v = (nice * t) / ticks;
      root.append(svg("line", { x1: x(v), x2: x(v), y1: top - 4, y2: height - 22, class: "grid" }),
        svg("text", { x: x(v), y: height - 6, class: "axis", "text-anchor": "middle" },
          fmtPct(v, nice * 100 < 4 ? 1 : 0)));
    }
    categories.forEach((cat, i) => {
      const y0 = top + i * groupH;
      root.append(svg("text", { x: labelW - 10, y: y0 + (series.length * (barH + gap)) / 2 + 4,
        class: "label", "text-anchor": "end" }, cat));
      series.forEach((s, j) => {
        const v = s.values[i];
        const y = y0 + j * (barH + gap);
        if (v === null || v === undefined) {
          root.append(svg("text", { x: labelW + 4, y: y + barH - 3, class: "axis" }, "n/a"));
          return;
        }
        root.append(svg("rect", { x: labelW, y, width: Math.max(1, x(v) - labelW), height: barH,
          rx: 3, class: s.cls }, svg("title", {}, `${cat} · ${s.name}: ${fmtPct(v)}`)),
        svg("text", { x: x(v) + 6, y: y + barH - 3, class: "value" }, fmtPct(v)));
      });
    });
    const legend = h("div", { class: "legend" }, series.map((s) =>
      h("span", {}, h("i", { class: `sw ${s.cls}` }), s.name)));
    return h("figure", { class: "chart" }, legend, root);
  }

  /** Draw charts at the size they are shown, so their text stays at its CSS size. */
  function chartWidth(el, fallback, padding = 0) {
    const w = el.clientWidth - padding;
    return w > 300 ? Math.round(w) : fallback;
  }

  function niceMax(v) {
    const exp = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return Math.min(1, m * exp);
    return 1;
  }

  function initSimulation() {
    $("sim-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const button = $("sim-run");
      busy(button, async () => {
        button.textContent = "Simulating…";
        $("sim-results").setAttribute("aria-busy", "true");
        try {
          await runSimulation();
        } catch (e) {
          showError("sim-error", e);
        } finally {
          $("sim-results").removeAttribute("aria-busy");
        }
      });
    });
    for (const id of ["sim-players", "sim-draws"]) $(id).addEventListener("input", updateSimTotal);
  }

  // ---------------------------------------------------------------- publish, versions, diff

  async function loadVersions() {
    const game = S.game;
    const body = await api("GET", gamePath("/versions"));
    if (game !== S.game) return;
    S.versions = body;
    const g = S.games.find((x) => x.game === game);
    if (g) g.live_version = body.live_version;
    updateLiveBadge();
    renderVersions();
    renderDiffSelectors();
  }

  function renderVersions() {
    const box = $("versions-list");
    const body = S.versions;
    if (!body || !body.versions.length) {
      clear(box, h("p", { class: "muted" }, "Nothing published yet."));
      return;
    }
    clear(box, h("table", { class: "data versions", "data-testid": "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Published", "Note", "Checksum", ""].map((t) =>
        h("th", { scope: "col" }, t)))),
      h("tbody", {}, body.versions.map((v) => {
        const live = v.version === body.live_version;
        const previous = body.versions.find((o) => o.version < v.version);
        return h("tr", { class: live ? "is-live" : null },
          h("th", { scope: "row" }, `v${v.version}`, live ? h("span", { class: "badge live" }, "live") : null),
          h("td", {}, fmtTime(v.published_at)),
          h("td", {}, v.note || h("span", { class: "muted" }, "—")),
          h("td", { class: "mono small" }, String(v.checksum).slice(0, 10)),
          h("td", { class: "actions" },
            previous ? h("button", { type: "button", class: "btn small ghost",
              "aria-label": `Diff v${previous.version} to v${v.version}`,
              onclick: () => showDiff(String(previous.version), String(v.version)) },
            "Changes") : null,
            live ? null : h("button", { type: "button", class: "btn small",
              "aria-label": `Roll back to v${v.version}`,
              onclick: () => rollback(v.version) }, "Roll back to this")));
      }))));
  }

  function renderDiffSelectors() {
    const refs = [];
    if (S.versions && S.versions.draft) refs.push(["draft", "Draft"]);
    if (S.versions && S.versions.live_version) refs.push(["live", `Live (v${S.versions.live_version})`]);
    for (const v of (S.versions && S.versions.versions) || []) refs.push([String(v.version), `v${v.version}`]);
    const has = (v) => refs.some(([r]) => r === v);
    const defaults = { "diff-from": has("live") ? "live" : null,
      "diff-to": has("draft") ? "draft" : has("live") ? "live" : null };
    for (const id of ["diff-from", "diff-to"]) {
      const sel = $(id);
      const previous = sel.dataset.chosen;
      clear(sel, refs.map(([value, label]) => h("option", { value }, label)));
      const want = previous && has(previous) ? previous : defaults[id];
      if (want) sel.value = want;
    }
  }

  async function showDiff(from, to, chosen = true) {
    $("diff-from").value = from;
    $("diff-to").value = to;
    if (chosen) {
      $("diff-from").dataset.chosen = from;
      $("diff-to").dataset.chosen = to;
    }
    const box = $("diff-view");
    try {
      const d = await api("GET", gamePath(`/versions/${encodeURIComponent(from)}/diff/` +
        `${encodeURIComponent(to)}`));
      clear(box, diffTable(d));
    } catch (e) {
      clear(box, h("div", { class: "error-box" }, errorContent(e)));
    }
  }

  function diffTable(d) {
    const s = d.summary;
    const head = h("p", { class: "diff-summary" }, h("strong", {}, `${d.from} → ${d.to}`), " ",
      h("span", { class: "chip ok" }, `+${s.added} added`), " ",
      h("span", { class: "chip bad" }, `−${s.removed} removed`), " ",
      h("span", { class: "chip warn" }, `~${s.changed} changed`));
    if (!d.changes.length) return [head, h("p", { class: "muted" }, "No differences.")];
    return [head, h("table", { class: "data diff", "data-testid": "diff" },
      h("thead", {}, h("tr", {}, ["Path", "Change", "From", "To"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, d.changes.map((c) => h("tr", { class: `op-${c.op}` },
        h("td", { class: "mono" }, c.path),
        h("td", {}, c.op),
        h("td", { class: "mono old" }, fmtValue(c.from)),
        h("td", { class: "mono new" }, fmtValue(c.to))))))];
  }

  async function renderPublishChanges() {
    const box = $("publish-changes");
    const hint = $("publish-hint");
    const button = $("publish-btn");
    const dirty = isDirty() || S.draft.source !== "draft";
    button.textContent = dirty ? "Save & publish" : "Publish draft";
    hint.textContent = dirty ? "The editor has unsaved changes: they are saved first." : "";
    if (!S.versions || !S.versions.draft) {
      clear(box, h("p", { class: "muted small" }, "No saved draft yet."));
      return;
    }
    if (!S.versions.live_version) {
      clear(box, h("p", { class: "muted small" }, "Nothing is live yet: this is the first version."));
      return;
    }
    try {
      const d = await api("GET", gamePath("/versions/live/diff/draft"));
      const s = d.summary;
      const n = s.added + s.removed + s.changed;
      clear(box, n === 0 ? h("p", { class: "muted small" }, "The saved draft is what is live now.")
        : h("details", {}, h("summary", {}, `Saved draft vs live: ${n} change${n > 1 ? "s" : ""}`),
          diffTable(d)));
    } catch (e) {
      clear(box, h("div", { class: "error-box" }, errorContent(e)));
    }
  }

  async function publish() {
    showError("publish-error", null);
    if (S.draft.source !== "draft" || isDirty()) await saveDraft();
    await loadVersions();
    let changes = null;
    if (S.versions.live_version) {
      const d = await api("GET", gamePath("/versions/live/diff/draft"));
      changes = d.changes.length ? diffTable(d) : h("p", {}, "The draft is identical to what " +
        "is live: nothing will be published.");
    }
    const next = (S.versions.versions[0] ? S.versions.versions[0].version : 0) + 1;
    const ok = await confirmDialog(`Publish ${S.game} v${next}?`,
      [h("p", {}, "Shoppers see this config within a second. You can roll back at any time."),
        changes], "Publish");
    if (!ok) return;
    const done = await api("POST", gamePath("/publish"), { note: $("publish-note").value },
      { idempotencyKey: newIdempotencyKey("publish") });
    toast(done.changed ? `Published v${done.version}: live now` : "Nothing changed: the draft is live already");
    $("publish-note").value = "";
    await afterLiveChange();
  }

  async function rollback(version) {
    const note = h("input", { type: "text", id: "rollback-note", maxlength: "120",
      placeholder: "why (optional)" });
    const ok = await confirmDialog(`Roll back to v${version}?`, [
      h("p", {}, `v${version}'s config is published again as a new version. Your draft is left as it is.`),
      h("label", { for: "rollback-note" }, "Note"), note], "Roll back");
    if (!ok) return;
    try {
      const done = await api("POST", gamePath("/rollback"), { version, note: note.value },
        { idempotencyKey: newIdempotencyKey("rollback") });
      toast(`Rolled back: v${done.version} is live (config of v${version})`);
      await afterLiveChange();
    } catch (e) {
      toast(e.message, "bad");
    }
  }

  async function afterLiveChange() {
    S.loaded = {};
    await loadVersions();
    await refreshGames();
    await renderPublishChanges();
  }

  function initVersions() {
    $("publish-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy($("publish-btn"), async () => {
        try {
          await publish();
        } catch (e) {
          showError("publish-error", e);
        }
      });
    });
    $("diff-run").addEventListener("click", () => showDiff($("diff-from").value, $("diff-to").value));
    $("versions-refresh").addEventListener("click", () => loadTab("versions"));
  }

  // ---------------------------------------------------------------- stock

  /** Loads the stock table once per game at a time: a tab click and a game switch that
   * land together share one request, so the table is not drawn twice under the merchant's
   * hands. */
  function loadStock(fresh = false) {
    const game = S.game;
    if (!fresh && S.stockLoading && S.stockLoading.game === game) return S.stockLoading.done;
    const done = fetchStock(game).finally(() => {
      if (S.stockLoading && S.stockLoading.done === done) S.stockLoading = null;
    });
    S.stockLoading = { game, done };
    return done;
  }

  /** Units typed but not yet applied, by input id, so a redraw keeps them. */
  function typedStock() {
    const typed = new Map();
    for (const input of document.querySelectorAll("#stock-table input.stock-add")) {
      if (input.value !== "") typed.set(input.id, input.value);
    }
    return typed;
  }

  async function fetchStock(game) {
    showError("stock-error", null);
    // Only the newest load draws: one started before an Apply and answered after the
    // load that follows it would put the old totals back.
    const seq = ++S.stockSeq;
    let body;
    try {
      body = await api("GET", gamePath("/stock"));
    } catch (e) {
      if (game === S.game && seq === S.stockSeq) {
        showError("stock-error", e);
        $("stock-table").replaceChildren();
      }
      return;
    }
    if (game !== S.game || seq !== S.stockSeq) return;
    S.loaded.stock = game;
    const typed = typedStock();
    const rows = body.stock || [];
    if (!rows.length) {
      clear($("stock-table"), h("p", { class: "muted" }, "The live version has no limited stock."));
      return;
    }
    clear($("stock-table"), h("table", { class: "data stock", "data-testid": "stock" },
      h("thead", {}, h("tr", {}, ["Prize", "Total", "Reserved", "Granted", "Left", "Add units"]
        .map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
      h("tbody", {}, rows.map((r) => {
        const inputId = `stock-add-${r.ref.replace(/[^a-z0-9_-]/gi, "-")}`;
        const input = h("input", { type: "number", id: inputId, step: "1", placeholder: "+100",
          class: "stock-add", "aria-label": `Units to add to ${r.ref}` });
        if (typed.has(inputId)) input.value = typed.get(inputId);
        const apply = h("button", { type: "submit", class: "btn small" }, "Apply");
        const form = h("form", { class: "inline-form", novalidate: true }, input, apply);
        form.addEventListener("submit", (ev) => {
          ev.preventDefault();
          addStock(r.ref, input, apply);
        });
        const meter = stockMeter(r);
        return h("tr", {},
          h("th", { scope: "row" }, r.ref),
          h("td", { class: "num" }, fmtInt(r.total)),
          h("td", { class: "num" }, fmtInt(r.reserved)),
          h("td", { class: "num" }, h("span", { class: "left-cell" }, meter, fmtInt(r.granted))),
          h("td", { class: "num" }, fmtInt(r.left)),
          h("td", { class: "num" }, form));
      }))));
  }

  /** What a prize's units are doing, as one bar: granted (solid) and reserved (light)
   * from the left, the rest left. A share above 0 is never drawn thinner than 2 px, so a
   * few units out of 10,000 still show; the title says the exact figures. */
  function stockMeter(r) {
    const pct = (n) => (r.total > 0 ? (100 * n) / r.total : 0);
    const granted = h("span", { class: "granted" });
    const reserved = h("span", { class: "reserved" });
    for (const [seg, n] of [[granted, r.granted], [reserved, r.reserved]]) {
      seg.style.width = n > 0 ? `max(2px, ${pct(n).toFixed(2)}%)` : "0";
    }
    const left = pct(r.left);
    const label = `granted ${fmtInt(r.granted)} (${fmtShare(pct(r.granted))}), reserved ` +
      `${fmtInt(r.reserved)}, left ${fmtInt(r.left)} of ${fmtInt(r.total)} (${fmtShare(left)})`;
    return h("span", { class: `meter ${r.total > 0 && left < 10 ? "low" : ""}`, title: label,
      role: "img", "aria-label": label, "data-testid": `meter-${r.ref}` }, granted, reserved);
  }

  function fmtShare(p) {
    return p > 0 && p < 0.1 ? "< 0.1 %" : `${Number(p.toFixed(1))} %`;
  }

  function newIdempotencyKey(prefix) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function addStock(ref, input, button) {
    const n = Number(input.value);
    if (input.value.trim() === "" || !Number.isInteger(n) || n === 0) {
      toast("Enter a whole number of units to add (negative removes)", "bad");
      input.focus();
      return;
    }
    await busy(button, async () => {
      try {
        // One key per click: setStock requires one, and a resent request moves stock once.
        const body = await api("POST", gamePath(`/stock/${encodeURIComponent(ref)}`), { add: n },
          { idempotencyKey: newIdempotencyKey("stock") });
        toast(`${ref}: total ${fmtInt(body.stock.total)}, ${fmtInt(body.stock.left)} left`);
        input.value = "";  // applied: the redraw must not offer the same units again
        S.loaded.stock = null;
        await loadStock(true);  // not a load that started before the change
      } catch (e) {
        showError("stock-error", e);
      }
    });
  }

  function initStock() {
    $("stock-refresh").addEventListener("click", () => { S.loaded.stock = null; loadTab("stock"); });
  }

  // ---------------------------------------------------------------- analytics

  async function loadAnalytics() {
    const game = S.game;
    showError("analytics-error", null);
    let a;
    try {
      a = await api("GET", gamePath(`/analytics?days=${$("analytics-days").value}`));
    } catch (e) {
      if (game === S.game) showError("analytics-error", e);
      return;
    }
    if (game !== S.game) return;
    S.loaded.analytics = game;
    $("analytics-range").textContent = `${a.from} to ${a.to} (${a.timezone})`;
    const t = a.totals;
    clear($("analytics-totals"),
      statCard("Players", fmtInt(t.players), "all time"),
      statCard("Active players", fmtInt(t.active_players), "in this period"),
      statCard("New players", fmtInt(t.new_players), "in this period"),
      statCard("Draws", fmtInt(t.draws), "blind-box draws"),
      statCard("Coupons granted", fmtInt(t.coupons_granted), "confirmed"),
      statCard("Weekly retention", t.weekly_retention ? fmtPct(t.weekly_retention.rate, 1) : "—",
        "new players back the next week"));
    clear($("analytics-dau"), dauChart(a.days, chartWidth($("analytics-dau"), 760)));
    clear($("analytics-cohorts"), heatmap(a.cohorts.filter((c) => c.size > 0).reverse(),
      "date", ["d1", "d7", "d30"], ["D1", "D7", "D30"], "Cohort day"));
    clear($("analytics-weekly"), heatmap([...a.weekly].filter((w) => w.size > 0).reverse(),
      "week_start", ["w1", "w2", "w3", "w4"], ["W1", "W2", "W3", "W4"], "Week of"));
    clear($("analytics-definitions"), Object.entries(a.definitions || {}).map(([k, v]) =>
      [h("dt", {}, k), h("dd", {}, v)]));
  }

  function dauChart(days, width = 760) {
    const height = 220;
    const left = 40;
    const bottom = 26;
    const top = 10;
    const plotW = width - left - 10;
    const plotH = height - top - bottom;
    const max = Math.max(1, ...days.map((d) => d.dau));
    const nice = niceInt(max);
    const bw = plotW / Math.max(1, days.length);
    const y = (v) => top + plotH - (v / nice) * plotH;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
      "aria-label": `Daily active players: ${days.map((d) => `${d.date} ${d.dau}`).join(", ")}` });
    const steps = [4, 5, 2, 3].find((n) => nice % n === 0) || 4;
    for (let t = 0; t <= steps; t++) {
      const v = (nice * t) / steps;
      root.append(svg("line", { x1: left, x2: width - 10, y1: y(v), y2: y(v), class: "grid" }),
        svg("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmtInt(v)));
    }
    const every = Math.ceil(days.length / 8);
    days.forEach((d, i) => {
      const x = left + i * bw + bw * 0.15;
      const w = Math.max(1, bw * 0.7);
      const returning = Math.max(0, d.dau - d.new_players);
      const tip = `${d.date}: ${d.dau} active, ${d.new_players} new, ${d.draws} draws`;
      root.append(svg("g", {},
        svg("title", {}, tip),
        svg("rect", { x, y: y(d.dau), width: w, height: Math.max(0, y(0) - y(returning)),
          class: "s-dau", rx: 2 }),
        svg("rect", { x, y: y(d.new_players), width: w,
          height: Math.max(0, y(0) - y(d.new_players)), class: "s-new", rx: 2 })));
      if (i % every === 0) {
        root.append(svg("text", { x: x + w / 2, y: height - 8, class: "axis",
          "text-anchor": "middle" }, d.date.slice(5)));
      }
    });
    if (days.every((d) => d.dau === 0)) {
      root.append(svg("text", { x: left + plotW / 2, y: top + plotH / 2, class: "empty-note",
        "text-anchor": "middle" }, "No activity in this period yet"));
    }
    return root;
  }

  function niceInt(v) {
    const exp = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return Math.max(4, m * exp);
    return v;
  }

  function heatmap(rows, dateKey, keys, labels, dateLabel) {
    if (!rows.length) return h("p", { class: "muted" }, "No new players in this period yet.");
    return h("table", { class: "data heat" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, dateLabel),
        h("th", { scope: "col", class: "num" }, "New"),
        labels.map((l) => h("th", { scope: "col", class: "num" }, l)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("th", { scope: "row" }, r[dateKey]),
        h("td", { class: "num" }, fmtInt(r.size)),
        keys.map((k) => {
          const cell = r[k];
          if (!cell) return h("td", { class: "num pending", title: "not over yet" }, "…");
          const td = h("td", { class: "num heat-cell",
            title: `${cell.retained} of ${r.size} came back` }, fmtPct(cell.rate, 0));
          const rate = cell.rate || 0;
          td.style.backgroundColor = `hsla(168, 70%, 38%, ${0.08 + rate * 0.85})`;
          if (rate > 0.45) td.classList.add("on-dark");
          return td;
        })))));
  }

  function initAnalytics() {
    $("analytics-refresh").addEventListener("click", () => {
      S.loaded.analytics = null;
      loadTab("analytics");
    });
    $("analytics-days").addEventListener("change", () => {
      S.loaded.analytics = null;
      loadTab("analytics");
    });
  }

  // ---------------------------------------------------------------- export

  /* exportEvents streams NDJSON: event lines (ledger, draw, grant, play, in that order),
   * each with the cursor that resumes right after it, then {"type": "end", "cursor",
   * "count", "more"}. The export asks for at most data-page-size lines a request and
   * follows "more" from the end line's cursor; a stream cut short (no end line) or ended by
   * an {"type": "error", "cursor"} line is resumed from the last cursor it had, so the file
   * has every event once. The kinds not picked are read (the API sends every kind) and
   * left out of the file. */
  const EXPORT_TRIES = 4;          // requests in a row that may fail before the export stops
  const EXPORT_STATUS_MS = 400;    // the progress line is rewritten at most this often

  const exporting = { abort: null };

  /** A stream that stopped before its end line; ``cursor`` is where to resume. */
  class ExportCut extends Error {
    constructor(message, cursor) {
      super(message);
      this.cursor = cursor;
    }
  }

  function exportStatus(text) {
    $("export-status").textContent = text;
  }

  function countsText(counts) {
    const parts = Object.entries(counts).filter(([, n]) => n).map(([k, n]) => `${k} ${fmtInt(n)}`);
    return parts.length ? ` (${parts.join(", ")})` : "";
  }

  /** One exportEvents request from ``cursor``: its lines go to onLine as they arrive.
   * Resolves with the end line; throws ApiError for a refusal, ExportCut (with the cursor
   * to resume from) for a stream that stopped early. */
  async function exportPage(cursor, limit, signal, onLine) {
    const qs = new URLSearchParams({ limit: String(limit) });
    if (cursor) qs.set("cursor", cursor);
    let resp;
    try {
      resp = await fetch(gamePath(`/export?${qs}`), { headers: { Authorization: `Bearer ${S.key}` },
        cache: "no-store", signal });
    } catch (e) {
      if (signal.aborted) throw e;
      throw new ExportCut(`Could not reach petbox (${e.message})`);
    }
    if (!resp.ok) {
      let err = {};
      try { err = (await resp.json()).error || {}; } catch { err = {}; }
      const e = new ApiError(resp.status, err.code || `http_${resp.status}`,
        err.message || resp.statusText || "export refused", err.details);
      e.retryAfter = Number(resp.headers.get("Retry-After")) || 0;
      if (resp.status === 401) signOut("Your API key was not accepted any more. Please sign in again.");
      throw e;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let last = cursor;
    const line = (text) => {
      if (!text) return null;
      const obj = JSON.parse(text);
      if (obj.type === "end") return obj;
      if (obj.type === "error") throw new ExportCut(obj.message || "export interrupted", obj.cursor);
      onLine(obj.type, text);
      last = obj.cursor;
      return null;
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const end = line(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
          if (end) return end;
        }
        if (done) break;
      }
    } catch (e) {
      if (e instanceof ExportCut) throw new ExportCut(e.message, e.cursor ?? last);
      if (signal.aborted) throw e;
      throw new ExportCut(`the download broke off (${e.message})`, last);
    }
    throw new ExportCut("the download broke off before its end", last);  // no end line
  }

  async function runExport() {
    showError("export-error", null);
    const kinds = new Set([...document.querySelectorAll("#export-form [name=kind]:checked")]
      .map((el) => el.value));
    const start = $("export-cursor").value.trim();
    if (!kinds.size) {
      showError("export-error", new Error("Pick at least one kind of event to export."));
      return;
    }
    if (start && !/^(v2\.[A-Za-z0-9_-]+|v1\.[0-9.]+)$/.test(start)) {
      showError("export-error", new Error("A cursor starts with v2. (v1. from the release " +
        "before): copy it from a line of an earlier export."));
      $("export-cursor").focus();
      return;
    }
    const limit = Math.max(1, Number($("export-form").dataset.pageSize) || 50000);
    const game = S.game;
    const controller = new AbortController();
    exporting.abort = controller;
    const lines = [];
    const counts = { ledger: 0, draw: 0, grant: 0, play: 0 };
    let read = 0;
    let requests = 0;
    let shownAt = 0;
    const progress = (final) => {
      const now = performance.now();
      if (!final && now - shownAt < EXPORT_STATUS_MS) return;
      shownAt = now;
      exportStatus(`${fmtInt(read)} events read, ${fmtInt(lines.length)} kept${countsText(counts)}` +
        ` · request ${requests}`);
    };
    $("export-progress").hidden = false;
    $("export-cancel").hidden = false;
    exportStatus("Starting…");
    let cursor = start;
    let failures = 0;
    try {
      for (;;) {
        requests++;
        let end;
        try {
          end = await exportPage(cursor, limit, controller.signal, (type, text) => {
            read++;
            if (kinds.has(type)) {
              lines.push(text, "\n");
              counts[type] = (counts[type] || 0) + 1;
            }
            progress(false);
          });
        } catch (e) {
          const retry = e instanceof ExportCut || (e instanceof ApiError &&
            (e.status === 503 || e.status === 429) && (e.retryAfter || 1) <= API_MAX_WAIT_S);
          if (!retry || controller.signal.aborted || ++failures >= EXPORT_TRIES) throw e;
          if (e instanceof ExportCut && e.cursor !== undefined) cursor = e.cursor;
          exportStatus(`${e.message}: resuming in a moment from where it stopped…`);
          await new Promise((resolve) => setTimeout(resolve,
            1000 * (e.retryAfter || 2 ** (failures - 1))));
          continue;
        }
        failures = 0;
        cursor = end.cursor;
        if (!end.more) break;
      }
    } catch (e) {
      if (controller.signal.aborted) {
        exportStatus(`Stopped after ${fmtInt(read)} events: nothing was downloaded.`);
      } else {
        exportStatus("");
        showError("export-error", e instanceof ExportCut ? new Error(`The export stopped: ` +
          `${e.message}. ${fmtInt(read)} events had been read; nothing was downloaded. ` +
          `Try again later, or start after cursor ${e.cursor || cursor || "(none)"}.`) : e);
      }
      return;
    } finally {
      exporting.abort = null;
      $("export-progress").hidden = true;
      $("export-cancel").hidden = true;
    }
    progress(true);
    if (game !== S.game) return;
    const day = new Intl.DateTimeFormat("en-CA", { timeZone: S.tz || undefined }).format(new Date());
    const name = `${game}-events-${day}.ndjson`;
    const url = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    exportStatus(`${fmtInt(lines.length / 2)} events in ${name}${countsText(counts)}. The next ` +
      `export can start after cursor ${cursor}.`);
  }

  function initExport() {
    $("export-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (exporting.abort) return;
      busy($("export-run"), async () => {
        $("export-run").textContent = "Exporting…";
        await runExport();
      });
    });
    $("export-cancel").addEventListener("click", () => {
      if (exporting.abort) exporting.abort.abort();
    });
  }

  // ---------------------------------------------------------------- start

  window.addEventListener("beforeunload", (ev) => {
    if (S.merchant && isDirty()) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  });

  document.addEventListener("DOMContentLoaded", async () => {
    initLogin();
    initTabs();
    initDraft();
    initSimulation();
    initVersions();
    initStock();
    initAnalytics();
    initExport();
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (!key) {
      signOut("");
      return;
    }
    try {
      await signIn(key);
    } catch (e) {
      signOut(e.status === 401 ? "Your saved API key was not accepted. Please sign in again."
        : e.message);
    }
  });
})();
