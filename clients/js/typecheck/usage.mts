// Compiled by `tsc -p .` (never run): a mini-program's use of the client, typed by the
// response types generated from /openapi.json. A response that lost its schema would
// leave these field reads untyped, and the generator refuses to produce such a file.
import { createClient, PetboxError } from "../petbox.mjs";
import type { Draw, Player } from "../petbox.mjs";

export async function journey(): Promise<string[]> {
  const c = createClient({ baseUrl: "http://127.0.0.1:8080", game: "squirrel-omg" });
  const session = await c.createSession({ merchant: "m", user: "u", ts: 0, sign: "" });
  const expires: number = session.expires_at;
  const adopted = await c.adoptPet("squirrel", "Nutty");
  const fed = await c.feedPet("acorn_snack", { idempotencyKey: "feed-1" });
  const satiety: number | undefined = fed.player.pet?.stats["satiety"]?.value;
  const stages: string[] = fed.stages;
  const checked = await c.checkIn();
  const streak: number = checked.streak + (checked.player.checkin?.streak ?? 0);
  const ten = await c.drawBox("forest_friends", 10);
  const first: Draw | undefined = ten.draws[0];
  const nonce: number = first ? first.nonce : -1;
  const acorns: number | undefined = ten.wallet["acorn"];
  const listed = await c.listDraws();
  const cursor: number | null = listed.next_cursor;
  const next = await c.listDraws({ cursor, limit: 50 });
  const voted = await c.castVote("best", "red");
  const group = await c.joinGroupBuy("trio", "abcdefghij", { idempotencyKey: "join-1" });
  const team = await c.createTeam("d11", { name: "Nuts", open: true });
  void [next.draws.length, voted.votes_left_today, group.seats_left, team.code];
  const series = await c.getBoxSeries("forest_friends");
  const price: number = series.price.amount;
  const me: Player = (await c.getPlayer()).player;
  const coupons = await c.listMyCoupons();
  const sale = await c.getFlashSale("midnight");
  const pending: number | undefined = sale.stock_pending;
  const held = await c.claimFlashSaleWhenBack("midnight", {
    onLook: (view) => { const left: number = view.stock_left; void left; } });
  const until: number = held.until;
  const rotated = await c.rotateSeed();
  const revealed: string | undefined = rotated.revealed?.server_seed;
  try {
    await c.exchange("hat_for_acorns");
  } catch (err) {
    if (err instanceof PetboxError) return [err.code];
  }
  return [String(expires), adopted.player.created_at.toString(), String(satiety),
          ...stages, String(streak), String(nonce), String(acorns), String(cursor),
          String(price), String(me.wallet["acorn"]), JSON.stringify(coupons),
          String(revealed), String(pending), String(until)];
}
