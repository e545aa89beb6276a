// Types of petbox.mjs. The response types come from openapi-types.d.mts, generated from
// petbox's /openapi.json (npm run types); tests/integration/test_js_client.py checks that
// the checked-in file is what the served document generates, and type-checks this.
import type { Responses } from "./openapi-types.mjs";

export type * from "./openapi-types.mjs";

export class PetboxError extends Error {
  constructor(status: number, code: string, message: string,
              details?: Record<string, unknown>);
  status: number;
  code: string;
  details: Record<string, unknown>;
  /** The answer's Retry-After in ms, when it had one (a cooldown too long to retry). */
  retryAfterMs?: number;
}

export interface TransportRequest {
  method: string; url: string; headers: Record<string, string>; body?: string;
  timeoutMs: number;
}
export interface TransportResponse { status: number; headers: Record<string, string>; body: string }
export type Transport = (req: TransportRequest) => Promise<TransportResponse>;

export function fetchTransport(fetchImpl?: typeof fetch): Transport;
export function wxTransport(wx: { request(options: object): unknown }): Transport;
export function myTransport(my: { request(options: object): unknown }): Transport;
export function newIdempotencyKey(prefix?: string): string;

export interface ClientOptions {
  baseUrl: string; game: string; token?: string; transport?: Transport;
  /** The merchant's id: public views (getBoxSeries, getPoll, getFlashSale, getPresale,
   * getEnvelopeRain, getSampleCampaign) read before a session name it with ?merchant=. */
  merchant?: string;
  /** A fresh signed login (sent to createSession) or token, from the merchant's backend. */
  refreshToken?: () => Promise<string | SignedLogin>; attempts?: number; backoffMs?: number;
  maxBackoffMs?: number; timeoutMs?: number; sleep?: (ms: number) => Promise<void>;
}
/** Per action: the Idempotency-Key to send (one is made when absent). */
export interface ActionOptions { idempotencyKey?: string }
export interface SignedLogin { merchant: string; user: string; ts: number; sign: string }

export interface PetboxClient {
  request(method: string, path: string, body?: unknown,
          opts?: ActionOptions & { auth?: boolean }): Promise<unknown>;
  readonly token: string;
  setToken(value: string): void;
  createSession(login: SignedLogin): Promise<Responses["createSession"]>;
  getPlayer(): Promise<Responses["getPlayer"]>;
  adoptPet(species: string, name: string, opts?: ActionOptions): Promise<Responses["adoptPet"]>;
  feedPet(food: string, opts?: ActionOptions): Promise<Responses["feedPet"]>;
  playWithPet(opts?: ActionOptions): Promise<Responses["playWithPet"]>;
  cleanPet(opts?: ActionOptions): Promise<Responses["cleanPet"]>;
  collectProduce(opts?: ActionOptions): Promise<Responses["collectProduce"]>;
  checkIn(opts?: ActionOptions): Promise<Responses["checkIn"]>;
  /** 补签: `day` (YYYY-MM-DD) or, when absent, the latest missed day. */
  makeupCheckIn(day?: string, opts?: ActionOptions): Promise<Responses["makeupCheckIn"]>;
  /** Games with an energy section: spend `amount` (1 when absent). */
  spendEnergy(amount?: number, opts?: ActionOptions): Promise<Responses["spendEnergy"]>;
  startTask(task: string, opts?: ActionOptions): Promise<Responses["startTask"]>;
  completeTask(task: string, ticket?: string | null,
               opts?: ActionOptions): Promise<Responses["completeTask"]>;
  getBoxSeries(series: string): Promise<Responses["getBoxSeries"]>;
  drawBox(series: string, count?: 1 | 10, clientSeed?: string,
          opts?: ActionOptions): Promise<Responses["drawBox"]>;
  rotateSeed(opts?: ActionOptions): Promise<Responses["rotateSeed"]>;
  /** A page of draws: the next one with `cursor: page.next_cursor`; `limit` 1..100. */
  listDraws(page?: { cursor?: number | null; limit?: number }): Promise<Responses["listDraws"]>;
  /** `duplicates`: which spare copies to give (item → count). */
  exchange(offer: string, opts?: ActionOptions & { duplicates?: Record<string, number> }):
    Promise<Responses["exchange"]>;
  listMyCoupons(): Promise<Responses["listMyCoupons"]>;
  getLeaderboard(board: string, page?: { limit?: number }): Promise<Responses["getLeaderboard"]>;
  getFlashSale(sale: string): Promise<Responses["getFlashSale"]>;
  claimFlashSale(sale: string, opts?: ActionOptions): Promise<Responses["claimFlashSale"]>;
  /**
   * claimFlashSale that, on a `sold_out` with `details.stock_pending` above 0 (units
   * held by claims still being settled: 还有机会), looks at getFlashSale after each
   * Retry-After and claims again (a new key) once a unit is back; rejects with the
   * last `sold_out` once nothing is pending or after `maxLooks` looks (default 30).
   */
  claimFlashSaleWhenBack(sale: string, opts?: {
    maxLooks?: number; onLook?: (view: Responses["getFlashSale"]) => void;
  }): Promise<Responses["claimFlashSale"]>;
  getPresale(presale: string): Promise<Responses["getPresale"]>;
  reservePresale(presale: string, opts?: ActionOptions): Promise<Responses["reservePresale"]>;
  getPoll(poll: string): Promise<Responses["getPoll"]>;
  castVote(poll: string, option: string, opts?: ActionOptions): Promise<Responses["castVote"]>;
  startAssist(campaign: string, opts?: ActionOptions): Promise<Responses["startAssist"]>;
  giveAssist(campaign: string, code: string,
             opts?: ActionOptions): Promise<Responses["giveAssist"]>;
  getAssist(campaign: string, assist: string): Promise<Responses["getAssist"]>;
  createTeam(season: string, team?: { name?: string; open?: boolean },
             opts?: ActionOptions): Promise<Responses["createTeam"]>;
  /** Without a code: auto-match (seasons with it). */
  joinTeam(season: string, code?: string, opts?: ActionOptions): Promise<Responses["joinTeam"]>;
  leaveTeam(season: string, opts?: ActionOptions): Promise<Responses["leaveTeam"]>;
  claimTeamRewards(season: string, opts?: ActionOptions): Promise<Responses["claimTeamRewards"]>;
  getTeam(season: string, team: string): Promise<Responses["getTeam"]>;
  getEnvelopeRain(rain: string): Promise<Responses["getEnvelopeRain"]>;
  grabEnvelope(rain: string, round: string,
               opts?: ActionOptions): Promise<Responses["grabEnvelope"]>;
  getSampleCampaign(campaign: string): Promise<Responses["getSampleCampaign"]>;
  applySample(campaign: string, opts?: ActionOptions): Promise<Responses["applySample"]>;
  listMySamples(): Promise<Responses["listMySamples"]>;
  reviewSample(campaign: string, report: string,
               opts?: ActionOptions): Promise<Responses["reviewSample"]>;
  listGroupBuys(offer: string): Promise<Responses["listGroupBuys"]>;
  createGroupBuy(offer: string, opts?: ActionOptions): Promise<Responses["createGroupBuy"]>;
  joinGroupBuy(offer: string, code: string,
               opts?: ActionOptions): Promise<Responses["joinGroupBuy"]>;
  leaveGroupBuy(offer: string, group: string,
                opts?: ActionOptions): Promise<Responses["leaveGroupBuy"]>;
  getGroupBuy(offer: string, group: string): Promise<Responses["getGroupBuy"]>;
}

export function createClient(options: ClientOptions): PetboxClient;
