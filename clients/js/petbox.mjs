// petbox client for mini-programs (WeChat, Taobao) and Node: one ES module, no dependencies.
//
// - A pluggable transport: fetchTransport (browsers, Node 18+), wxTransport (wx.request),
//   myTransport (my.request). A transport sends one request and resolves
//   {status, headers, body} (body: the text); it rejects only when no answer came back.
// - One Idempotency-Key per logical action: every shopper POST makes its key once and
//   sends it again on each retry, so a retry after a lost reply is answered with the
//   first response and never applied twice (nothing drawn or charged twice).
// - Retries with backoff: no answer, 429, 503 and the 409s that say another action is
//   still running (idempotency_in_progress, action_in_progress, groupbuy_in_progress). A
//   Retry-After is honoured: the retry waits all of it, never less; one longer than the
//   client waits between attempts (maxBackoffMs) is not retried early but thrown at once
//   (a cooldown such as session_too_young or rejoin_too_soon: retrying in a few seconds
//   only hammers the server), with the wait in err.retryAfterMs.
// - Typed errors: PetboxError {status, code, message, details}.
// - Flash sales: claimFlashSaleWhenBack treats a sold_out with details.stock_pending > 0
//   (还有机会) as not final: it looks at the cached public view and claims again once a
//   unit is back, instead of claiming in a loop.
// - Token refresh: the client never holds the merchant's signing secret. On a 401 it calls
//   refreshToken(), which asks the merchant's backend for a fresh signed login (sent to
//   createSession here) or a token, and retries once with the same Idempotency-Key.
//   Requests refused together share one refresh; one sent with a token that was since
//   replaced is sent again with the new token without asking the backend.

/** A refusal from petbox: the HTTP status and the stable error code. */
export class PetboxError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details]
   */
  constructor(status, code, message, details = {}) {
    super(`${status} ${code}: ${message}`);
    this.name = "PetboxError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * @typedef {{method: string, url: string, headers: Record<string, string>, body?: string,
 *            timeoutMs: number}} TransportRequest
 * @typedef {{status: number, headers: Record<string, string>, body: string}} TransportResponse
 * @typedef {(req: TransportRequest) => Promise<TransportResponse>} Transport
 */

/** @param {typeof fetch} [fetchImpl] @returns {Transport} */
export function fetchTransport(fetchImpl = globalThis.fetch) {
  return async ({ method, url, headers, body, timeoutMs }) => {
    const resp = await fetchImpl(url, {
      method, headers, body, signal: AbortSignal.timeout(timeoutMs),
    });
    /** @type {Record<string, string>} */
    const out = {};
    resp.headers.forEach((v, k) => { out[k.toLowerCase()] = v; });
    return { status: resp.status, headers: out, body: await resp.text() };
  };
}

/** Adapts a wx.request / my.request style API (success/fail callbacks). */
function callbackTransport(request, statusKey, headerKey) {
  return ({ method, url, headers, body, timeoutMs }) => new Promise((resolve, reject) => {
    request({
      url, method, header: headers, headers, data: body, timeout: timeoutMs,
      dataType: "text", responseType: "text",
      success: (res) => {
        /** @type {Record<string, string>} */
        const out = {};
        for (const [k, v] of Object.entries(res[headerKey] || {})) out[k.toLowerCase()] = String(v);
        const data = typeof res.data === "string" ? res.data : JSON.stringify(res.data ?? "");
        resolve({ status: res[statusKey], headers: out, body: data });
      },
      fail: (err) => reject(new Error(err && (err.errMsg || err.errorMessage) || "request failed")),
    });
  });
}

/** WeChat mini-programs: `wxTransport(wx)`. */
export const wxTransport = (wx) => callbackTransport(wx.request.bind(wx), "statusCode", "header");
/** Taobao/Alipay mini-programs: `myTransport(my)`. */
export const myTransport = (my) => callbackTransport(my.request.bind(my), "status", "headers");

/** A fresh Idempotency-Key: 1-64 characters of [A-Za-z0-9_-]. */
export function newIdempotencyKey(prefix = "js") {
  const bytes = new Uint8Array(18);
  globalThis.crypto.getRandomValues(bytes);
  let text = "";
  for (const b of bytes) text += b.toString(16).padStart(2, "0");
  return `${prefix}-${text}`.slice(0, 64);
}

const RETRY_STATUSES = new Set([429, 503]);
/** 409s that mean "still running, retry": the request was not applied, and the same
 * key sent again after Retry-After settles it (docs/api.md). */
const IN_PROGRESS = new Set(["idempotency_in_progress", "action_in_progress",
  "groupbuy_in_progress"]);

/** A Retry-After header (whole seconds) in ms, or null when absent or not a number. */
function retryAfterMs(value) {
  return value && /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : null;
}

/**
 * @param {{baseUrl: string, game: string, merchant?: string, token?: string, transport?: Transport,
 *          refreshToken?: () => Promise<string>, attempts?: number, backoffMs?: number,
 *          maxBackoffMs?: number, timeoutMs?: number, sleep?: (ms: number) => Promise<void>}} options
 */
export function createClient(options) {
  const base = options.baseUrl.replace(/\/+$/, "");
  const game = encodeURIComponent(options.game);
  const transport = options.transport || fetchTransport();
  const attempts = Math.max(1, options.attempts ?? 5);
  const backoffMs = options.backoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 10000;
  const sleep = options.sleep || ((ms) => new Promise((r) => setTimeout(r, ms)));
  let token = options.token || "";
  /** The refresh under way, shared by every request that meets a 401 meanwhile. */
  let refreshing = null;

  /** A fresh token from refreshToken(): its answer as is, or the token of the signed
   * login it answered. */
  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        try {
          const got = await options.refreshToken();
          token = typeof got === "string" ? got
            : (await request("POST", "/v1/sessions", got, { auth: false })).token;
        } finally {
          refreshing = null;
        }
      })();
    }
    return refreshing;
  }

  /** How long to wait before attempt + 1, or null when the server asks for longer than
   * this client waits (the caller then throws instead of retrying before it was told). */
  function delay(attempt, retryAfter) {
    const asked = retryAfterMs(retryAfter);
    if (asked !== null) return asked > maxBackoffMs ? null : asked;
    const ceiling = Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }

  function errorOf(resp) {
    try {
      const e = JSON.parse(resp.body).error;
      return new PetboxError(resp.status, e.code, e.message, e.details || {});
    } catch {
      return new PetboxError(resp.status, "http_error", resp.body.slice(0, 200));
    }
  }

  /**
   * One logical action: its Idempotency-Key (POST) is made once and reused by every retry.
   * @param {string} method @param {string} path @param {unknown} [body]
   * @param {{idempotencyKey?: string, auth?: boolean}} [opts]
   */
  async function request(method, path, body, opts = {}) {
    const key = method === "POST" ? (opts.idempotencyKey || newIdempotencyKey()) : undefined;
    const data = body === undefined ? undefined : JSON.stringify(body);
    let refreshed = false;
    for (let attempt = 1; ; attempt += 1) {
      /** @type {Record<string, string>} */
      const headers = { Accept: "application/json" };
      if (data !== undefined) headers["Content-Type"] = "application/json";
      if (key) headers["Idempotency-Key"] = key;
      const sentToken = token;
      if (opts.auth !== false && token) headers.Authorization = `Bearer ${token}`;
      let resp;
      try {
        resp = await transport({ method, url: base + path, headers, body: data, timeoutMs });
      } catch (err) {
        if (attempt >= attempts) throw err;  // no answer: maybe applied; the key settles it
        await sleep(delay(attempt, undefined));
        continue;
      }
      if (resp.status < 300) return resp.body ? JSON.parse(resp.body) : null;
      const error = errorOf(resp);
      if (resp.status === 401 && options.refreshToken && !refreshed && opts.auth !== false) {
        if (token === sentToken) await refresh();  // else another request refreshed it
        refreshed = true;
        continue;
      }
      const retryable = RETRY_STATUSES.has(resp.status)
        || (resp.status === 409 && IN_PROGRESS.has(error.code));
      const asked = retryAfterMs(resp.headers["retry-after"]);
      if (asked !== null) error.retryAfterMs = asked;
      if (!retryable || attempt >= attempts) throw error;
      const wait = delay(attempt, resp.headers["retry-after"]);
      if (wait === null) throw error;
      await sleep(wait);
    }
  }

  const g = `/v1/games/${game}`;
  const seg = encodeURIComponent;
  /** A public view's path: ?merchant= names the merchant while there is no token. */
  const pub = (path) => (!token && options.merchant
    ? `${path}?merchant=${seg(options.merchant)}` : path);
  /** A path with the query of the options given (undefined ones left out). */
  const query = (path, params) => {
    const q = Object.entries(params || {}).filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${seg(k)}=${seg(String(v))}`).join("&");
    return q ? `${path}?${q}` : path;
  };
  return {
    request,
    /** The token now in use (after a refresh, the new one). */
    get token() { return token; },
    setToken(value) { token = value; },
    /** createSession: a signed login from the merchant's backend → the token, kept. */
    async createSession(login) {
      const out = await request("POST", "/v1/sessions", login, { auth: false });
      token = out.token;
      return out;
    },
    getPlayer: () => request("GET", `${g}/me`),
    adoptPet: (species, name, opts) => request("POST", `${g}/pet`, { species, name }, opts),
    feedPet: (food, opts) => request("POST", `${g}/pet/feed`, { food }, opts),
    playWithPet: (opts) => request("POST", `${g}/pet/play`, {}, opts),
    cleanPet: (opts) => request("POST", `${g}/pet/clean`, {}, opts),
    collectProduce: (opts) => request("POST", `${g}/pet/collect`, {}, opts),
    checkIn: (opts) => request("POST", `${g}/checkin`, {}, opts),
    makeupCheckIn: (day, opts) =>
      request("POST", `${g}/checkin/makeup`, day ? { day } : {}, opts),
    spendEnergy: (amount, opts) =>
      request("POST", `${g}/energy/spend`, amount ? { amount } : {}, opts),
    startTask: (task, opts) => request("POST", `${g}/tasks/${seg(task)}/start`, {}, opts),
    completeTask: (task, ticket, opts) =>
      request("POST", `${g}/tasks/${seg(task)}/complete`, ticket ? { ticket } : {}, opts),
    getBoxSeries: (series) => request("GET", pub(`${g}/boxes/${seg(series)}`)),
    drawBox: (series, count = 1, clientSeed, opts) => request(
      "POST", `${g}/boxes/${seg(series)}/draw`,
      clientSeed ? { count, client_seed: clientSeed } : { count }, opts),
    rotateSeed: (opts) => request("POST", `${g}/boxes/seed/rotate`, {}, opts),
    listDraws: (page = {}) =>
      request("GET", query(`${g}/draws`, { cursor: page.cursor, limit: page.limit })),
    exchange: (offer, opts = {}) => request("POST", `${g}/exchange`,
      opts.duplicates ? { offer, duplicates: opts.duplicates } : { offer }, opts),
    listMyCoupons: () => request("GET", `${g}/coupons`),
    getLeaderboard: (board, page = {}) =>
      request("GET", query(`${g}/leaderboards/${seg(board)}`, { limit: page.limit })),
    getFlashSale: (sale) => request("GET", pub(`${g}/flashsales/${seg(sale)}`)),
    claimFlashSale,
    claimFlashSaleWhenBack,
    getPresale: (presale) => request("GET", pub(`${g}/presales/${seg(presale)}`)),
    reservePresale: (presale, opts) =>
      request("POST", `${g}/presales/${seg(presale)}`, {}, opts),
    // Polls (投票)
    getPoll: (poll) => request("GET", pub(`${g}/polls/${seg(poll)}`)),
    castVote: (poll, option, opts) =>
      request("POST", `${g}/polls/${seg(poll)}/vote`, { option }, opts),
    // Friend assist (助力)
    startAssist: (campaign, opts) => request("POST", `${g}/assists/${seg(campaign)}`, {}, opts),
    giveAssist: (campaign, code, opts) =>
      request("POST", `${g}/assists/${seg(campaign)}/help`, { code }, opts),
    getAssist: (campaign, assist) =>
      request("GET", `${g}/assists/${seg(campaign)}/${seg(assist)}`),
    // Teams (组队)
    createTeam: (season, team = {}, opts) => request("POST", `${g}/teams/${seg(season)}`,
      picked(team, ["name", "open"]), opts),
    joinTeam: (season, code, opts) =>
      request("POST", `${g}/teams/${seg(season)}/join`, code ? { code } : {}, opts),
    leaveTeam: (season, opts) => request("POST", `${g}/teams/${seg(season)}/leave`, {}, opts),
    claimTeamRewards: (season, opts) =>
      request("POST", `${g}/teams/${seg(season)}/claim`, {}, opts),
    getTeam: (season, team) => request("GET", `${g}/teams/${seg(season)}/${seg(team)}`),
    // Red-envelope rain (红包雨) and sampling (派样)
    getEnvelopeRain: (rain) => request("GET", pub(`${g}/rains/${seg(rain)}`)),
    grabEnvelope: (rain, round, opts) =>
      request("POST", `${g}/rains/${seg(rain)}/grab`, { round }, opts),
    getSampleCampaign: (campaign) => request("GET", pub(`${g}/samples/${seg(campaign)}`)),
    applySample: (campaign, opts) =>
      request("POST", `${g}/samples/${seg(campaign)}/apply`, {}, opts),
    listMySamples: () => request("GET", `${g}/samples`),
    reviewSample: (campaign, report, opts) =>
      request("POST", `${g}/samples/${seg(campaign)}/review`, { report }, opts),
    // Group buy (拼团)
    listGroupBuys: (offer) => request("GET", `${g}/groupbuys/${seg(offer)}`),
    createGroupBuy: (offer, opts) => request("POST", `${g}/groupbuys/${seg(offer)}`, {}, opts),
    joinGroupBuy: (offer, code, opts) =>
      request("POST", `${g}/groupbuys/${seg(offer)}/join`, { code }, opts),
    leaveGroupBuy: (offer, group, opts) =>
      request("POST", `${g}/groupbuys/${seg(offer)}/groups/${seg(group)}/leave`, {}, opts),
    getGroupBuy: (offer, group) =>
      request("GET", `${g}/groupbuys/${seg(offer)}/groups/${seg(group)}`),
  };

  /** The fields of `value` named in `keys` that are given. */
  function picked(value, keys) {
    return Object.fromEntries(keys.filter((k) => value[k] !== undefined).map((k) => [k, value[k]]));
  }

  function claimFlashSale(sale, opts) {
    return request("POST", `${g}/flashsales/${seg(sale)}/claim`, {}, opts);
  }

  /**
   * claimFlashSale for the midnight crowd. A `sold_out` whose details.stock_pending is
   * above 0 is not final (还有机会): claims still being settled hold those units and
   * may give them back. Look at getFlashSale (cheap: cached on the server) after each
   * Retry-After, and claim again, with a new key, once a unit is back. Rejects with
   * the last `sold_out` once nothing is pending, or after maxLooks looks.
   * @param {string} sale
   * @param {{maxLooks?: number, onLook?: (view: any) => void}} [opts]
   */
  async function claimFlashSaleWhenBack(sale, opts = {}) {
    const maxLooks = opts.maxLooks ?? 30;
    let looks = 0;
    for (;;) {
      let soldOut;
      try {
        return await claimFlashSale(sale);
      } catch (err) {
        if (!(err instanceof PetboxError) || err.code !== "sold_out") throw err;
        soldOut = err;
      }
      let pending = soldOut.details.stock_pending || 0;
      const waitMs = 1000 * (soldOut.details.retry_after || 1);
      let back = false;
      while (pending > 0 && !back) {
        if (looks >= maxLooks) throw soldOut;
        looks += 1;
        await sleep(waitMs);
        const view = await request("GET", pub(`${g}/flashsales/${seg(sale)}`));
        if (opts.onLook) opts.onLook(view);
        back = view.stock_left > 0;
        pending = view.stock_pending || 0;
      }
      if (!back) throw soldOut;
    }
  }
}
