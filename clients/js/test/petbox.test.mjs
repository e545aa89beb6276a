// The mini-program client against a real petbox server (node --test).
// Needs PETBOX_URL, PETBOX_MERCHANT, PETBOX_SECRET (the signing secret, playing the
// merchant's backend) and PETBOX_GAME (a live copy of gameserver/examples/squirrel-omg.json);
// tests/integration/test_js_client.py starts the server and runs this.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";

import { PetboxError, createClient, fetchTransport, newIdempotencyKey, wxTransport }
  from "../petbox.mjs";

const { PETBOX_URL: url, PETBOX_MERCHANT: merchant, PETBOX_SECRET: secret,
  PETBOX_GAME: game } = process.env;
assert.ok(url && merchant && secret && game, "PETBOX_URL, _MERCHANT, _SECRET, _GAME needed");

/** What the merchant's backend does: sign a login with the secret's text as is. */
function signedLogin(user) {
  const ts = Math.floor(Date.now() / 1000);
  const sign = createHmac("sha256", secret).update(`${merchant}\n${user}\n${ts}`).digest("hex");
  return { merchant, user, ts, sign };
}

async function newShopper(user, options = {}) {
  const client = createClient({ baseUrl: url, game, sleep: async () => {}, ...options });
  await client.createSession(signedLogin(user));
  return client;
}

test("a new shopper adopts, feeds, ten-draws and sees their coupons", async () => {
  const c = await newShopper("js-alice");
  await c.adoptPet("squirrel", "Nutty");
  await c.feedPet("acorn_snack");
  const ten = await c.drawBox("forest_friends", 10);
  assert.equal(ten.draws.length, 10);
  const wallet = await c.listMyCoupons();
  assert.deepEqual(Object.keys(wallet.counts).sort(), ["expired", "issued", "redeemed"]);
  const me = await c.getPlayer();
  assert.equal(me.player.boxes.nonce, 10);
});

test("a lost reply is retried with the same key and applied once", async () => {
  const real = fetchTransport();
  const seen = [];
  let calls = 0;
  const losing = async (req) => {
    seen.push(req.headers["Idempotency-Key"]);
    calls += 1;
    const resp = await real(req);
    if (calls === 1) throw new Error("connection reset");  // applied, reply lost
    return resp;
  };
  const c = await newShopper("js-bob");
  await c.adoptPet("squirrel", "Pip");
  const before = (await c.getPlayer()).player.wallet.acorn;
  const retrying = createClient({ baseUrl: url, game, token: c.token, transport: losing,
    sleep: async () => {} });
  const out = await retrying.feedPet("acorn_snack");
  assert.equal(seen.length, 2);
  assert.equal(seen[0], seen[1]);
  assert.ok(out);  // the first attempt's answer, replayed
  assert.equal((await c.getPlayer()).player.wallet.acorn, before - 10);  // charged once
});

test("an expired token is refreshed through the merchant's backend", async () => {
  let asked = 0;
  const refreshToken = async () => {
    asked += 1;
    const fresh = createClient({ baseUrl: url, game });
    return (await fresh.createSession(signedLogin("js-carol"))).token;
  };
  const c = createClient({ baseUrl: url, game, token: "pbt1.expired.or.forged", refreshToken,
    sleep: async () => {} });
  const me = await c.getPlayer();
  assert.equal(asked, 1);
  assert.ok(me.player);
  assert.notEqual(c.token, "pbt1.expired.or.forged");
});

test("refreshToken may answer a signed login; concurrent 401s refresh once", async () => {
  // docs/api.md: the callback asks the merchant's backend for a fresh signed login.
  let asked = 0;
  const refreshToken = async () => {
    asked += 1;
    await new Promise((r) => setTimeout(r, 20));  // the backend takes a moment
    return signedLogin("js-kim");
  };
  const c = createClient({ baseUrl: url, game, token: "pbt1.expired.or.forged", refreshToken,
    sleep: async () => {} });
  const views = await Promise.all([c.getPlayer(), c.getPlayer(), c.getPlayer()]);
  assert.equal(asked, 1);
  for (const me of views) assert.ok(me.player);
  assert.match(c.token, /^pbt1\./);
  assert.notEqual(c.token, "pbt1.expired.or.forged");
});

test("refusals are typed errors, not retried", async () => {
  let calls = 0;
  const real = fetchTransport();
  const counting = async (req) => { calls += 1; return real(req); };
  const c = await newShopper("js-dave", { transport: counting });
  calls = 0;
  await assert.rejects(c.feedPet("acorn_snack"), (err) => {
    assert.ok(err instanceof PetboxError);
    assert.equal(err.status, 409);
    assert.equal(err.code, "no_pet");
    return true;
  });
  assert.equal(calls, 1);
});

test("busy is retried after Retry-After", async () => {
  const real = fetchTransport();
  let calls = 0;
  const slept = [];
  const busyOnce = async (req) => {
    calls += 1;
    if (calls === 2) {
      return { status: 503, headers: { "retry-after": "1" },
        body: JSON.stringify({ error: { code: "busy", message: "m", details: {} } }) };
    }
    return real(req);
  };
  const c = createClient({ baseUrl: url, game, transport: busyOnce,
    sleep: async (ms) => { slept.push(ms); } });
  await c.createSession(signedLogin("js-erin"));
  const me = await c.getPlayer();
  assert.ok(me.player);
  assert.deepEqual(slept, [1000]);
});

test("Retry-After is waited in full; a longer one than the client waits is not retried",
  async () => {
    // 503 response_unavailable asks for 5 s: the retry waits all of it, not less.
    let calls = 0;
    const slept = [];
    const c = createClient({ baseUrl: url, game, sleep: async (ms) => { slept.push(ms); },
      maxBackoffMs: 5000, transport: scripted((req) => (req.url.endsWith("/me")
        && ++calls === 1 ? json(503, { error: { code: "response_unavailable", message: "m",
        details: { retry_after: 5 } } }, { "retry-after": "5" }) : null)) });
    await c.createSession(signedLogin("js-ivy"));
    assert.ok((await c.getPlayer()).player);
    assert.deepEqual([calls, slept], [2, [5000]]);

    // A cooldown of 30 s (429 session_too_young): thrown at once with the wait, never
    // sent again after 5 s only to be refused again.
    const sent = [];
    const d = createClient({ baseUrl: url, game, sleep: async (ms) => { slept.push(ms); },
      maxBackoffMs: 5000, transport: scripted((req) => {
        if (!req.url.endsWith("/pet/play")) return null;
        sent.push(req.headers["Idempotency-Key"]);
        return json(429, { error: { code: "session_too_young", message: "too new",
          details: { retry_after: 30 } } }, { "retry-after": "30" });
      }) });
    await d.createSession(signedLogin("js-jay"));
    slept.length = 0;
    const refused = await d.playWithPet().catch((err) => err);
    assert.deepEqual([sent.length, slept], [1, []]);
    assert.ok(refused instanceof PetboxError);
    assert.deepEqual([refused.code, refused.retryAfterMs], ["session_too_young", 30000]);
  });

test("another action still running (409 action_in_progress) is retried with the same key",
  async () => {
    const sent = [];
    const slept = [];
    const c = createClient({ baseUrl: url, game, sleep: async (ms) => { slept.push(ms); },
      transport: scripted((req) => {
        if (!req.url.endsWith("/checkin")) return null;
        sent.push(req.headers["Idempotency-Key"]);
        return sent.length === 1 ? json(409, { error: { code: "action_in_progress",
          message: "another action of yours is still running; retry",
          details: { retry_after: 1 } } }, { "retry-after": "1" }) : null;
      }) });
    await c.createSession(signedLogin("js-kim"));
    const out = await c.checkIn();
    assert.equal(out.streak, 1);
    assert.deepEqual(slept, [1000]);
    assert.equal(sent.length, 2);
    assert.equal(sent[0], sent[1]);
  });

/** A transport that answers what `answer(req)` gives, and the server the rest. */
function scripted(answer) {
  const real = fetchTransport();
  return async (req) => answer(req) || real(req);
}

function json(status, body, headers = {}) {
  return { status, headers, body: JSON.stringify(body) };
}

const SOLD_OUT_FOR_NOW = json(409, { error: { code: "sold_out", message: "sold out for now",
  details: { sale: "midnight", stock_left: 0, stock_pending: 1, retry_after: 1 } } },
{ "retry-after": "1" });

test("a flash sale sold out for now is looked at again and claimed once a unit is back",
  async () => {
    // The first claim is answered as the server does while the last units are held by
    // claims still being settled; the view and the second claim are the server's own.
    let claims = 0;
    const slept = [];
    const views = [];
    const c = createClient({ baseUrl: url, game, sleep: async (ms) => { slept.push(ms); },
      transport: scripted((req) => (req.url.endsWith("/flashsales/midnight/claim")
        && ++claims === 1 ? SOLD_OUT_FOR_NOW : null)) });
    await c.createSession(signedLogin("js-fay"));
    const held = await c.claimFlashSaleWhenBack("midnight", {
      onLook: (view) => views.push([view.status, view.stock_left > 0]) });
    assert.equal(held.status, "held");
    assert.equal(held.sale, "midnight");
    assert.deepEqual([claims, slept, views], [2, [1000], [["live", true]]]);

    // Still pending at every look: gives up after maxLooks with the sold_out.
    const stillPending = json(200, { sale: "midnight", status: "sold_out", stock_left: 0,
      stock_pending: 1 });
    slept.length = 0;
    const d = createClient({ baseUrl: url, game, sleep: async (ms) => { slept.push(ms); },
      transport: scripted((req) => (req.url.includes("/flashsales/midnight")
        ? (req.method === "POST" ? SOLD_OUT_FOR_NOW : stillPending) : null)) });
    await d.createSession(signedLogin("js-gus"));
    await assert.rejects(d.claimFlashSaleWhenBack("midnight", { maxLooks: 2 }), (err) => {
      assert.equal(err.code, "sold_out");
      return true;
    });
    assert.deepEqual(slept, [1000, 1000]);

    // Nothing pending any more: the sold_out is final after one look.
    const over = json(200, { sale: "midnight", status: "sold_out", stock_left: 0,
      stock_pending: 0 });
    let looks = 0;
    const e = createClient({ baseUrl: url, game, sleep: async () => {},
      transport: scripted((req) => (req.url.includes("/flashsales/midnight")
        ? (req.method === "POST" ? SOLD_OUT_FOR_NOW : (looks += 1, over)) : null)) });
    await e.createSession(signedLogin("js-hal"));
    await assert.rejects(e.claimFlashSaleWhenBack("midnight"),
      (err) => err.code === "sold_out" && err.details.stock_pending === 1);
    assert.equal(looks, 1);
  });

test("every shopper operation of /openapi.json is a method; public views, pages", async () => {
  const doc = await (await fetch(`${url}/openapi.json`)).json();
  const shopper = new Set(["shopper", "blind boxes", "plays"]);
  const ops = Object.values(doc.paths).flatMap((methods) => Object.values(methods))
    .filter((op) => (op.tags || []).some((t) => shopper.has(t))).map((op) => op.operationId);
  const c = createClient({ baseUrl: url, game, merchant, sleep: async () => {} });
  assert.ok(ops.length > 40);
  assert.deepEqual(ops.filter((id) => typeof c[id] !== "function"), []);

  // Before a session: a public view names the merchant (?merchant=).
  const series = await c.getBoxSeries("forest_friends");
  assert.equal(series.series, "forest_friends");
  assert.equal((await c.getFlashSale("midnight")).sale, "midnight");

  // listDraws pages: the next page from next_cursor, none twice. (It reads SQL: the
  // draws show once the persister has written them, about a flush interval later.)
  await c.createSession(signedLogin("js-lee"));
  await c.drawBox("forest_friends", 10);
  for (let n = 0; n < 100 && (await c.listDraws({ limit: 100 })).draws.length < 10; n += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const seen = [];
  let page = { limit: 4 };
  for (let n = 0; n < 10; n += 1) {
    const got = await c.listDraws(page);
    seen.push(...got.draws.map((d) => d.nonce));
    if (got.next_cursor === null) break;
    page = { cursor: got.next_cursor, limit: 4 };
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("the WeChat transport maps wx.request onto the same calls", async () => {
  const real = fetchTransport();
  const wx = {
    request({ url: u, method, header, data, timeout, success, fail }) {
      real({ method, url: u, headers: header, body: data, timeoutMs: timeout })
        .then((r) => success({ statusCode: r.status, header: r.headers, data: r.body }), fail);
    },
  };
  const c = createClient({ baseUrl: url, game, transport: wxTransport(wx) });
  await c.createSession(signedLogin("js-wx"));
  const series = await c.getBoxSeries("forest_friends");
  assert.equal(series.series, "forest_friends");
  assert.match(newIdempotencyKey(), /^js-[0-9a-f]{36}$/);
});
