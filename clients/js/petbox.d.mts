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
  collectProduce(opts?: ActionOptions): Promise<Responses["collectProduce"]>;
  checkIn(opts?: ActionOptions): Promise<Responses["checkIn"]>;
  startTask(task: string, opts?: ActionOptions): Promise<Responses["startTask"]>;
  completeTask(task: string, ticket?: string | null,
               opts?: ActionOptions): Promise<Responses["completeTask"]>;
  getBoxSeries(series: string): Promise<Responses["getBoxSeries"]>;
  drawBox(series: string, count?: 1 | 10, clientSeed?: string,
          opts?: ActionOptions): Promise<Responses["drawBox"]>;
  rotateSeed(opts?: ActionOptions): Promise<Responses["rotateSeed"]>;
  listDraws(): Promise<Responses["listDraws"]>;
  exchange(offer: string, opts?: ActionOptions): Promise<Responses["exchange"]>;
  listMyCoupons(): Promise<Responses["listMyCoupons"]>;
  getLeaderboard(board: string): Promise<Responses["getLeaderboard"]>;
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
}

export function createClient(options: ClientOptions): PetboxClient;
