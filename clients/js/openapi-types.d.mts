// Generated from petbox's /openapi.json by scripts/gen-types.mjs: do not edit.

export type Error = {
  error: {
    /** snake_case, stable */
    code: string;
    message: string;
    details: Record<string, unknown>;
  };
};

export type Player = {
  /** id → integer amount */
  wallet: { [key: string]: number };
  /** id → integer amount */
  inventory: { [key: string]: number };
  pet: Pet | null;
  /** action → when its cooldown ends */
  cooldowns: { [key: string]: number };
  /** coupons won (listMyCoupons lists them) */
  coupons?: {
    won: number;
  };
  checkin: {
    streak: number;
    checked_in_today: boolean;
    total: number;
    next_cycle_day: number;
    cycle_length: number;
    makeup_days: Array<string>;
  } | null;
  tasks: { [key: string]: {
    kind: string;
    period: string;
    limit: number;
    done: number;
    reward: Reward;
    browse_s?: number;
    spend_fen?: number;
    target_fen?: number;
  } } | null;
  exchanges: { [key: string]: {
    used: number;
    limit: number;
  } } | null;
  boxes?: {
    seed_hash: string;
    nonce: number;
    series?: { [key: string]: {
      pity: {
        hard: number;
        soft: number;
      };
      /** id → integer amount */
      owned: { [key: string]: number };
      today: number;
      day: number;
      total: number;
      completed: boolean;
    } };
  };
  energy?: {
    name: string;
    value: number;
    max: number;
    next_refill_at: number | null;
    full_at: number | null;
  };
  experiments?: Record<string, unknown>;
  sale_holds?: Array<Record<string, unknown>>;
  assists?: Record<string, unknown>;
  groupbuys?: Array<Record<string, unknown>>;
  teams?: Record<string, unknown>;
  /** id → integer amount */
  debts: { [key: string]: number };
  created_at: number;
};

export type Pet = {
  species: string;
  name: string;
  stats: { [key: string]: {
    value: number;
    max: number;
  } };
  states: Array<string>;
  xp: number;
  stage: {
    id: string | null;
    name: string | null;
    index: number;
    next_xp: number | null;
  } | null;
  produce: {
    currency: string;
    pending: number;
    pending_milli: number;
    cap: number;
    per_hour: number;
    full_at: number | null;
  } | null;
  adopted_at: number;
};

export type Draw = {
  series: string;
  position?: number;
  item: string;
  rarity: string;
  kind: string;
  prize?: {
    type: string;
    name?: string;
    template?: string | null;
    sku?: string | null;
    face_value_fen?: number | null;
  } | null;
  nonce: number;
  seed_hash: string;
  client_seed: string;
  table?: string;
  version?: number;
  pity_before?: {
    hard: number;
    soft: number;
  };
  pity_after?: {
    hard: number;
    soft: number;
  };
  forced?: string | null;
  level?: number;
  roll?: number;
  total?: number;
  out?: Array<string>;
  excluded?: Array<string>;
  at: number;
};

export type Reward = {
  /** id → integer amount */
  currency: { [key: string]: number };
  /** id → integer amount */
  items: { [key: string]: number };
  coupon?: string;
};

export type Granted = {
  /** id → integer amount */
  currency: { [key: string]: number };
  /** id → integer amount */
  items: { [key: string]: number };
  /** id → integer amount */
  coupons?: { [key: string]: number };
  /** id → integer amount */
  repaid?: { [key: string]: number };
};

export type Experiment = {
  name?: string;
  hypothesis?: string;
  /** mixed into the assignment hash; never change it while running */
  salt?: string;
  /** draft (validated, nobody assigned), running, ended (running in the config, but its stops_at passed: nobody is assigned, its results are frozen, a new experiment may start), stopped, shipped */
  status: "draft" | "running" | "stopped" | "shipped" | "ended";
  /** the arm the others are compared with */
  control?: string;
  arms: { [key: string]: {
    /** share of shoppers, in percent */
    percent: number;
    description?: string;
    /** JSON path of the live config → value in this arm */
    overrides?: { [key: string]: Record<string, unknown> };
    /** series -> the arm's box table hash (what its draw records name); in listExperiments and getExperiment, not in a write's answer */
    tables?: { [key: string]: string };
  } };
  /** new: only shoppers who first played at or after starts_at */
  eligibility?: "everyone" | "new";
  starts_at?: number;
  stops_at?: number;
  /** What decides the experiment, and what must not get worse. */
  metrics?: {
    primary: "d1_retention" | "d7_retention" | "d30_retention" | "w1_retention" | "draws_per_shopper" | "spend_per_shopper" | "prize_cost_per_shopper" | "orders_per_shopper" | "gmv_per_shopper";
    guardrails?: Array<"d1_retention" | "d7_retention" | "d30_retention" | "w1_retention" | "draws_per_shopper" | "spend_per_shopper" | "prize_cost_per_shopper" | "orders_per_shopper" | "gmv_per_shopper">;
  };
  /** fixed horizon: exposed shoppers per arm before the test is read (see docs/experiments.md) */
  sample_size?: number;
  /** getPlayer shows the shopper's arm */
  show_arm?: boolean;
  shipped_arm?: string;
  experiment: string;
  game_version?: number;
  simulation?: Record<string, unknown>;
};

/** adoptPet 201: Adopt a pet of one of the game's species */
export type AdoptPetResponse = {
  player: Player;
};

/** applySample 200: Apply for a free sample (once, in the window, if eligible); first come wins at once while stock lasts */
export type ApplySampleResponse = {
  campaign: string;
  status: "applied" | "won" | "waitlisted";
  applied_at: number;
};

/** castVote 200: Vote for one option (votes per shopper per day, optional price and reward); counted exactly once per Idempotency-Key */
export type CastVoteResponse = {
  poll: string;
  option: string;
  votes_today: number;
  votes_left_today: number;
  /** id → integer amount */
  wallet: { [key: string]: number };
};

/** checkIn 200: Check in for today (game timezone): streak and cycle reward */
export type CheckInResponse = {
  day: string;
  streak: number;
  cycle_day: number;
  player: Player;
};

/** claimFlashSale 200: Hold one unit until pay_by (a paid order with the sale's SKU confirms it); 409 not_started before the start, 409 sold_out when none is left (with details.stock_pending and Retry-After while claims in flight hold units that may come back) */
export type ClaimFlashSaleResponse = {
  /** the hold's id (shown in getPlayer) */
  hold: string;
  sale: string;
  status: "held";
  claimed_at: number;
  /** paid (converted) by then, or it expires */
  until: number;
  sku: string;
  price_fen: number;
  pay_by: number;
};

/** claimTeamRewards 200: Claim the rewards of milestones the team reached while the shopper was a member, each once */
export type ClaimTeamRewardsResponse = {
  season: string;
  team: string;
  /** milestone id → what was granted */
  claimed: { [key: string]: Granted };
  /** id → integer amount */
  wallet: { [key: string]: number };
};

/** cleanPet 200: Clean the pet: cleanliness and xp, then a cooldown */
export type CleanPetResponse = {
  /** the growth stages reached by this action (their rewards granted) */
  stages: Array<string>;
  player: Player;
};

/** collectProduce 200: Collect what the pet produced while the shopper was away */
export type CollectProduceResponse = {
  /** id → integer amount */
  collected: { [key: string]: number };
  player: Player;
};

/** completeTask 200: Complete a task (with its ticket for browse tasks) and take its reward */
export type CompleteTaskResponse = {
  task: string;
  granted: Granted;
  done: number;
  limit: number;
  player: Player;
};

/** console 200: The merchant console (HTML): drafts, simulation, publishing, stock, analytics */
export type ConsoleResponse = string;

/** consoleAsset 200: The console's scripts and styles */
export type ConsoleAssetResponse = string;

/** createGroupBuy 200: Open a group of a group-buy offer and get its share code */
export type CreateGroupBuyResponse = {
  group: string;
  code: string;
  offer: string;
  title: string;
  size: number;
  members: Array<{
    /** masked */
    user: string;
    joined_at: number;
    opener: boolean;
    me: boolean;
    /** present (true) only on a seat an auto-completed group filled at its expiry */
    system?: boolean;
  }>;
  member_count: number;
  seats_left: number;
  state: "open" | "complete" | "failed";
  created_at: number;
  expires_at: number;
  price_fen: number;
  server_time: number;
  /** present when this seat completed the group: what this shopper was granted (granted: false and a reason when nothing was) */
  reward?: {
    granted: boolean;
    reason?: "already" | "sold_out";
    /** id → integer amount */
    currency?: { [key: string]: number };
    /** id → integer amount */
    items?: { [key: string]: number };
    /** id → integer amount */
    coupons?: { [key: string]: number };
    /** id → integer amount */
    repaid?: { [key: string]: number };
  };
  /** id → integer amount */
  wallet: { [key: string]: number };
};

/** createSession 201: Exchange a merchant-signed login for a player token */
export type CreateSessionResponse = {
  token: string;
  expires_at: number;
};

/** createTeam 200: Create a team of a season and become its first member; the response has the share code */
export type CreateTeamResponse = {
  season: string;
  team: string;
  name: string;
  /** who created the team: masked for shoppers, whole in the merchant's view */
  owner: string;
  status: "upcoming" | "open" | "ended";
  created_at: number;
  open: boolean;
  /** members' points plus points kept from members who left */
  points: number;
  kept_points: number;
  size: number;
  min_size: number;
  max_size: number;
  seats_left: number;
  /** highest points first */
  members: Array<{
    /** masked for shoppers (oA***yz); whole in the merchant's view */
    user: string;
    points: number;
    joined_at: number;
    /** this member is the caller */
    me: boolean;
    /** this member created the team */
    owner: boolean;
  }>;
  milestones: Array<{
    id: string;
    points: number;
    reward: Reward;
    reached_at: number | null;
  }>;
  /** place on the season's board */
  rank: number | null;
  /** the share code (members only) */
  code: string;
  server_time: number;
};

/** diffGameVersions 200: JSON-path diff from config a to config b (a version number, live or draft) */
export type DiffGameVersionsResponse = {
  game: string;
  from: string;
  to: string;
  /** changes counted by op */
  summary: {
    added: number;
    removed: number;
    changed: number;
  };
  changes: Array<{
    /** JSON path, as in validation problems */
    path: string;
    op: "added" | "removed" | "changed";
    from?: unknown;
    to?: unknown;
  }>;
};

/** drawBox 200: Draw 1 or 10 boxes in one action (provably fair) */
export type DrawBoxResponse = {
  draws: Array<Draw>;
  /** id → integer amount */
  wallet: { [key: string]: number };
  /** id → integer amount */
  inventory: { [key: string]: number };
  box?: Record<string, unknown>;
  completed?: boolean;
};

/** drawSampleWinners 200: Draw a lottery campaign's winners after the window (provably fair, once) */
export type DrawSampleWinnersResponse = {
  campaign: string;
  drawn_at: number;
  seed: string;
  seed_hash: string;
  winners: number;
  cutoff: string | null;
  applicants: number;
  applicants_hash: string;
} | null;

/** erasePlayer 200: Erase a shopper's personal data of this game (PIPL art. 47) */
export type ErasePlayerResponse = {
  pseudonym: string;
  /** id → integer amount */
  deleted: { [key: string]: number };
  /** id → integer amount */
  pseudonymised: { [key: string]: number };
  redis_keys_deleted: number;
  refused_until: number;
};

/** exchange 200: 换购: spend currency, items or duplicates on an offer */
export type ExchangeResponse = {
  offer: string;
  paid: {
    /** id → integer amount */
    currency: { [key: string]: number };
    /** id → integer amount */
    items: { [key: string]: number };
  };
  granted: Granted;
  player: Player;
};

/** exportEvents 200: NDJSON stream of the game's ledger entries, draws, confirmed grants, shared plays' commits (votes, joins, grabs), orders, partial refunds and coupon redemptions after a cursor: each line carries the (opaque) cursor that resumes after it; the last line is {"type": "end", "cursor", "count", "more"} */
export type ExportEventsResponse = string;

/** feedPet 200: Feed the pet: pays the food's price, raises its stats and xp */
export type FeedPetResponse = {
  /** the growth stages reached by this action (their rewards granted) */
  stages: Array<string>;
  player: Player;
};

/** getAnalytics 200: Per day: DAU, new players, draws, coupons granted, average active minutes; D1/D7/D30 retention cohorts and weekly retention (days in the game's zone) */
export type GetAnalyticsResponse = {
  game: string;
  timezone: string;
  from: string;
  to: string;
  today?: string;
  days: Array<{
    date: string;
    dau: number;
    new_players: number;
    draws: number;
    coupons_granted?: number;
    avg_active_minutes?: number;
    coupons_redeemed?: number;
  }>;
  cohorts: Array<Record<string, unknown>>;
  weekly: Array<Record<string, unknown>>;
  totals: Record<string, unknown>;
  definitions?: { [key: string]: string };
};

/** getAssist 200: An assist: helps so far, needed, state, and the state of the owner's reward */
export type GetAssistResponse = {
  assist: string;
  code: string;
  campaign: string;
  title: string;
  state: "open" | "complete" | "expired";
  helps: number;
  needed: number;
  helps_left: number;
  started_at: number;
  expires_at: number;
  completed_at: number | null;
  /** the caller started this assist */
  mine: boolean;
  /** the caller helped this assist */
  helped: boolean;
  reward: Reward;
  reward_state: "pending" | "due" | "granted" | "coupon_unavailable" | "earned";
  server_time: number;
};

/** getAssistAdmin 200: One assist with its owner and helpers (customer support) */
export type GetAssistAdminResponse = {
  assist: string;
  code: string;
  campaign: string;
  title: string;
  state: "open" | "complete" | "expired";
  helps: number;
  needed: number;
  helps_left: number;
  started_at: number;
  expires_at: number;
  completed_at: number | null;
  reward: Reward;
  reward_state: "pending" | "due" | "granted" | "coupon_unavailable" | "earned";
  server_time: number;
  owner: string;
  /** users who helped, in order */
  helpers: Array<string>;
};

/** getAssistCampaignAdmin 200: An assist campaign's results: assists started, open, complete, expired, helps, the newest assists (from SQL, a flush interval behind) */
export type GetAssistCampaignAdminResponse = {
  campaign: string;
  title: string;
  needed: number;
  started: number;
  open: number;
  complete: number;
  expired: number;
  /** helps counted over every assist */
  helps: number;
  /** the newest assists */
  recent: Array<{
    assist: string;
    owner: string;
    state: "open" | "complete" | "expired";
    helps: number;
    needed: number;
    started_at: number;
    completed_at: number | null;
  }>;
  /** more assists than one report reads: counts are partial */
  truncated: boolean;
  server_time: number;
};

/** getBoxSeries 200: Disclosure: items, rarities, base and consolidated odds, pity, caps, prize values, stock left; with a token, the player's seed hash */
export type GetBoxSeriesResponse = {
  series: string;
  name: string;
  table: string;
  price: {
    currency: string;
    amount: number;
  };
  opens_at?: number;
  closes_at?: number;
  caps?: {
    daily: number;
    total: number;
  };
  tiers: Array<{
    id: string;
    name: string;
    rank: number;
    base_probability: number;
    consolidated_probability?: number;
  }>;
  items: Array<{
    id: string;
    rarity: string;
    kind: string;
    weight: number;
    base_probability: number;
    base_probability_exact: string;
    consolidated_probability?: number;
    max_copies?: number;
    prize?: Record<string, unknown>;
  }>;
  pity: Record<string, unknown>;
  duplicates?: Record<string, unknown>;
  completion_reward?: Record<string, unknown> | null;
  prize_value_fen?: Record<string, unknown>;
  stock_left: { [key: string]: number } | null;
  precision?: string;
  game_version: number;
  live_version?: number;
  player?: {
    seed_hash: string;
    nonce: number;
    pity: {
      hard: number;
      soft: number;
    };
    /** id → integer amount */
    owned: { [key: string]: number };
    today: number;
    day: number;
    total: number;
    completed: boolean;
  };
  arm?: string | null;
  experiments?: {
    note: string;
    arms: Array<Record<string, unknown>>;
  };
};

/** getEnvelopeRain 200: Public: the rain's rounds, envelopes and pool left, each round's seed hash, and its seed from the round's end on */
export type GetEnvelopeRainResponse = {
  rain: string;
  title: string;
  kind: "cash" | "coupon";
  currency: string;
  server_time: number;
  rounds: Array<{
    round: string;
    /** aggregates the round's pool is split over */
    buckets: number;
    status: "upcoming" | "open" | "empty" | "ended";
    starts_at: number;
    ends_at: number;
    pool_fen: number;
    envelopes: number;
    min_fen: number;
    grab_limit: number;
    envelopes_left: number;
    pool_left_fen: number;
    granted_fen: number;
    /** after the end: pool − granted */
    returned_fen: number;
    seed_hash: string | null;
    /** revealed from ends_at on */
    seed: string | null;
  }>;
};

/** getExperiment 200: An experiment, each arm's box tables, and (simulate=1) a simulation per arm */
export type GetExperimentResponse = Experiment;

/** getExperimentResults 200: Per-arm results (retention, draws, spend, prize cost, orders, GMV) with intervals, tests, a sample-ratio check and the fixed-horizon verdict */
export type GetExperimentResultsResponse = {
  experiment: string;
  /** draft (validated, nobody assigned), running, ended (running in the config, but its stops_at passed: nobody is assigned, its results are frozen, a new experiment may start), stopped, shipped */
  status?: "draft" | "running" | "stopped" | "shipped" | "ended";
  exposed: Record<string, unknown>;
  sample_ratio?: Record<string, unknown> | null;
  primary: Record<string, unknown>;
  metrics: Record<string, unknown>;
  method?: Record<string, unknown>;
};

/** getFlashSale 200: Public: price, start, server time and countdown, and the stock left */
export type GetFlashSaleResponse = {
  sale: string;
  title: string;
  sku: string;
  price_fen: number;
  list_price_fen: number | null;
  starts_at: number;
  ends_at: number | null;
  server_time: number;
  /** seconds until the start (0: started) */
  starts_in: number;
  status: "upcoming" | "live" | "sold_out" | "ended";
  stock: number;
  /** cached ≤ 1.0 s */
  stock_left: number;
  /** with none left: units claims still being settled hold, which may come back (还有机会: look again after a second) */
  stock_pending: number;
  per_shopper: number;
  pay_seconds: number;
  eligibility: {
    member_task: string | null;
    task: string | null;
    min_orders: number;
  };
};

/** getGameDraft 200: The game's draft config and its validation problems */
export type GetGameDraftResponse = {
  game: string;
  updated_at: number;
  checksum: string;
  live_version: number | null;
  config: Record<string, unknown>;
  problems: Array<Record<string, unknown>>;
};

/** getGameVersion 200: One published version with its config */
export type GetGameVersionResponse = {
  game: string;
  version: number;
  config: Record<string, unknown>;
  checksum: string;
  published_at: number;
  note: string;
  live: boolean;
};

/** getGroupBuy 200: A group: members, seats left, state (open, complete, failed) */
export type GetGroupBuyResponse = {
  group: string;
  code: string;
  offer: string;
  title: string;
  size: number;
  members: Array<{
    /** masked */
    user: string;
    joined_at: number;
    opener: boolean;
    me: boolean;
    /** present (true) only on a seat an auto-completed group filled at its expiry */
    system?: boolean;
  }>;
  member_count: number;
  seats_left: number;
  state: "open" | "complete" | "failed";
  created_at: number;
  expires_at: number;
  price_fen: number;
  server_time: number;
};

/** getLeaderboard 200: A leaderboard's top players (higher score first; ties by user id, descending), named by a masked id or pet name, and the shopper's own rank; updated by the persister, so about one flush interval behind */
export type GetLeaderboardResponse = {
  board: string;
  name: string;
  /** xp, draws, checkins, currency:<id>, item:<id>; a mechanic's own board names what it ranks (team:<season>: entries are team ids) */
  metric: string;
  size: number;
  /** how entries name players (the board's config); `id`: a mechanic's board of non-shoppers (teams), named by their id */
  show: "masked" | "pet_name" | "id";
  entries: Array<{
    rank: number;
    score: number;
    /** a masked id or a pet name, never a shopper's user id (a team board: the team's id) */
    name: string;
    /** this entry is the asking shopper */
    you: boolean;
  }>;
  /** the shopper's standing; null without a score on the board */
  me: {
    rank: number;
    score: number;
  } | null;
  /** scores lag the players' actions by about this (the persister's flush interval) */
  updated_within_s: number;
};

/** getPlayer 200: The shopper's pet (stats as of now), wallet, inventory and progress; in a game with coupons, how many were won (their states: listMyCoupons) */
export type GetPlayerResponse = {
  player: Player;
  version: number;
  game_version: number;
};

/** getPlayerAdmin 200: A player as the merchant sees it, with recent ledger */
export type GetPlayerAdminResponse = {
  user: string;
  player: Player;
  version: number;
  ledger: Array<Record<string, unknown>>;
};

/** getPoll 200: Public: options with live tallies, open and close times, and the result frozen at the close */
export type GetPollResponse = {
  poll: string;
  title: string;
  status: "upcoming" | "open" | "closed";
  opens_at: number;
  closes_at: number;
  server_time: number;
  votes_per_day: number;
  /** what a vote costs: currency → amount */
  cost: { [key: string]: number };
  /** what a vote earns: currency → amount */
  reward: { [key: string]: number };
  options: Array<{
    id: string;
    label: string;
    votes: number;
  }>;
  /** accepted votes (Σ of the options' votes) */
  total: number;
  /** null until the close; then the frozen winners and total */
  result: {
    frozen_at: number;
    total: number;
    winners: Array<string>;
  } | null;
};

/** getPresale 200: Public: reservation and purchase windows, deposit and benefit, server time, reservations left */
export type GetPresaleResponse = {
  presale: string;
  title: string;
  sku: string;
  price_fen: number;
  deposit_fen: number;
  /** priority: priority_until is shown; deposit_multiplier: deposit_value_fen */
  benefit: "priority" | "deposit_multiplier";
  priority_until?: number;
  deposit_value_fen?: number;
  reserve_from: number;
  reserve_until: number;
  event_at: number;
  convert_until: number;
  server_time: number;
  starts_in: number;
  event_in: number;
  status: "upcoming" | "reserving" | "sold_out" | "waiting" | "buying" | "ended";
  stock: number;
  stock_left: number;
  /** with none left: units claims still being settled hold, which may come back (还有机会: look again after a second) */
  stock_pending: number;
  per_shopper: number;
  eligibility: {
    member_task: string | null;
    task: string | null;
    min_orders: number;
  };
};

/** getSampleCampaign 200: Public: a sampling campaign's terms, window, applicants, the lottery seed hash and, once drawn, the result with the revealed seed */
export type GetSampleCampaignResponse = {
  campaign: string;
  title: string;
  sku: string;
  stock: number;
  mode: "first_come" | "lottery";
  status: "upcoming" | "open" | "closed" | "drawn";
  opens_at: number;
  closes_at: number;
  server_time: number;
  /** what an applicant must have: a member task, a follow task, this many orders */
  eligibility: {
    member: boolean;
    follow: boolean;
    min_orders: number;
  };
  review_reward: { [key: string]: number } | null;
  applicants: number;
  winners: number;
  stock_left: number;
  seed_hash: string | null;
  result: {
    campaign: string;
    drawn_at: number;
    seed: string;
    seed_hash: string;
    winners: number;
    cutoff: string | null;
    applicants: number;
    applicants_hash: string;
  } | null;
};

/** getSampleCampaignAdmin 200: A campaign as the merchant sees it: applicants, winners, review rate, reports */
export type GetSampleCampaignAdminResponse = {
  campaign: string;
  title: string;
  sku: string;
  stock: number;
  mode: "first_come" | "lottery";
  status: "upcoming" | "open" | "closed" | "drawn";
  opens_at: number;
  closes_at: number;
  server_time: number;
  /** what an applicant must have: a member task, a follow task, this many orders */
  eligibility: {
    member: boolean;
    follow: boolean;
    min_orders: number;
  };
  review_reward: { [key: string]: number } | null;
  applicants: number;
  winners: number;
  stock_left: number;
  seed_hash: string | null;
  result: {
    campaign: string;
    drawn_at: number;
    seed: string;
    seed_hash: string;
    winners: number;
    cutoff: string | null;
    applicants: number;
    applicants_hash: string;
  } | null;
  winner_users: Array<string>;
  reviews: number;
  review_rate: number;
  reports: Array<{
    user: string;
    at: number;
    report: string;
  }>;
};

/** getStock 200: Limited prizes, coupons and offers: total, reserved, granted, left */
export type GetStockResponse = {
  game: string;
  stock: Array<{
    ref: string;
    total: number;
    reserved: number;
    granted: number;
    left: number;
  }>;
};

/** getTeam 200: A team: members and their points, the team's points and rank, milestones */
export type GetTeamResponse = {
  season: string;
  team: string;
  name: string;
  /** who created the team: masked for shoppers, whole in the merchant's view */
  owner: string;
  status: "upcoming" | "open" | "ended";
  created_at: number;
  open: boolean;
  /** members' points plus points kept from members who left */
  points: number;
  kept_points: number;
  size: number;
  min_size: number;
  max_size: number;
  seats_left: number;
  /** highest points first */
  members: Array<{
    /** masked for shoppers (oA***yz); whole in the merchant's view */
    user: string;
    points: number;
    joined_at: number;
    /** this member is the caller */
    me: boolean;
    /** this member created the team */
    owner: boolean;
  }>;
  milestones: Array<{
    id: string;
    points: number;
    reward: Reward;
    reached_at: number | null;
  }>;
  /** place on the season's board */
  rank: number | null;
  /** the share code (members only) */
  code?: string;
  server_time: number;
};

/** getTeamAdmin 200: One team as the merchant sees it: members, points, milestones reached with the members of that moment, and its share code */
export type GetTeamAdminResponse = {
  season: string;
  team: string;
  name: string;
  /** who created the team: masked for shoppers, whole in the merchant's view */
  owner: string;
  status: "upcoming" | "open" | "ended";
  created_at: number;
  open: boolean;
  /** members' points plus points kept from members who left */
  points: number;
  kept_points: number;
  size: number;
  min_size: number;
  max_size: number;
  seats_left: number;
  /** highest points first */
  members: Array<{
    /** masked for shoppers (oA***yz); whole in the merchant's view */
    user: string;
    points: number;
    joined_at: number;
    /** this member is the caller */
    me: boolean;
    /** this member created the team */
    owner: boolean;
  }>;
  milestones: Array<{
    id: string;
    points: number;
    reward: Reward;
    reached_at: number | null;
  }>;
  /** place on the season's board */
  rank: number | null;
  /** the share code (members only) */
  code: string;
  server_time: number;
  /** milestone id → when it was reached and the members of that moment */
  reached: { [key: string]: {
    at: number;
    members: Array<string>;
  } };
};

/** getTeamSeasonAdmin 200: A team season as the merchant sees it: settings, status and the best teams of its board */
export type GetTeamSeasonAdminResponse = {
  season: string;
  name: string;
  status: "upcoming" | "open" | "ended";
  starts_at: number;
  ends_at: number;
  min_size: number;
  max_size: number;
  points: { [key: string]: number };
  milestones: Array<{
    id: string;
    points: number;
    reward: Reward;
  }>;
  board: string | null;
  server_time: number;
  /** the board's best teams (none without a board) */
  teams: Array<{
    rank: number;
    team: string;
    points: number;
    name: string | null;
    size: number | null;
    milestones_reached: Array<string>;
  }>;
};

/** giveAssist 200: Help the assist whose share code is sent; the helper is the session's user. At the needed help the owner gets the reward, once */
export type GiveAssistResponse = {
  assist: string;
  campaign: string;
  /** helps the assist has, this one included */
  helps: number;
  needed: number;
  /** this help completed the assist */
  complete: boolean;
  /** the helper reward granted */
  reward: {
    /** id → integer amount */
    currency: { [key: string]: number };
    /** id → integer amount */
    items: { [key: string]: number };
    /** id → integer amount */
    coupons?: { [key: string]: number };
    /** id → integer amount */
    repaid?: { [key: string]: number };
  };
  wallet: { [key: string]: number };
};

/** grabEnvelope 200: Grab the next envelope of a round while it is open; its amount is verifiable from the seed revealed after the round */
export type GrabEnvelopeResponse = {
  rain: string;
  round: string;
  amount_fen: number;
  /** the envelope's index in the round's split */
  nonce: number;
  kind: string;
  currency: string;
  seed_hash: string;
  reveal_at: number;
  grabs_left: number;
  /** present only when the balance grew past what the grab saw and could not hold the whole envelope: the part not credited (amount_fen is what was) */
  uncredited_fen?: number;
  /** present (true) only when the envelope could not be credited: SQL had no envelope of the round left */
  void?: boolean;
  wallet: { [key: string]: number };
};

/** grantPlayer 200: Grant currency and items, ledgered with a reason */
export type GrantPlayerResponse = {
  /** id → integer amount */
  wallet: { [key: string]: number };
  /** id → integer amount */
  inventory: { [key: string]: number };
  reason: string;
};

/** healthz 200: Liveness */
export type HealthzResponse = {
  status: string;
};

/** ingestOrder 200: A paid or refunded order, signed by the merchant (X-Petbox-Timestamp, X-Petbox-Signature); idempotent by order id (a partial refund: by order id and refund_id); drives purchase tasks */
export type IngestOrderResponse = {
  order: string;
  duplicate?: boolean;
  known?: boolean;
  /** id → integer amount */
  tasks?: { [key: string]: number };
  refund_due?: Array<{
    kind: string;
    sale: string;
    sku: string;
    price_fen: number;
    reason: string;
  }>;
  /** id → integer amount */
  taken_back?: { [key: string]: number };
  /** id → integer amount */
  debt?: { [key: string]: number };
  refund?: string;
  amount_fen?: number;
  clamped?: boolean;
  refunded_fen?: number;
  remaining_fen?: number;
  refunded?: boolean;
  sale_holds?: Array<{
    kind: "flash_sale" | "presale";
    sale: string;
    hold: string | null;
    result: "paid" | "refund" | "no_hold" | "converted" | "deposit_paid" | "already_converted" | "no_reservation";
    late?: boolean;
    replaces?: string;
    reason?: string;
    order?: string;
    deposit_value_fen?: number;
  }>;
  flashsale?: {
    deposits_refunded: Array<string>;
  };
  groupbuy?: {
    groups: Array<{
      group: string;
      refunded: boolean;
      /** id → integer amount */
      debt?: { [key: string]: number };
    }>;
  };
};

/** joinGroupBuy 200: Join a group with its share code (full: 409 group_full; expired: 409 group_expired); the last seat completes it and rewards every member once */
export type JoinGroupBuyResponse = {
  group: string;
  code: string;
  offer: string;
  title: string;
  size: number;
  members: Array<{
    /** masked */
    user: string;
    joined_at: number;
    opener: boolean;
    me: boolean;
    /** present (true) only on a seat an auto-completed group filled at its expiry */
    system?: boolean;
  }>;
  member_count: number;
  seats_left: number;
  state: "open" | "complete" | "failed";
  created_at: number;
  expires_at: number;
  price_fen: number;
  server_time: number;
  /** present when this seat completed the group: what this shopper was granted (granted: false and a reason when nothing was) */
  reward?: {
    granted: boolean;
    reason?: "already" | "sold_out";
    /** id → integer amount */
    currency?: { [key: string]: number };
    /** id → integer amount */
    items?: { [key: string]: number };
    /** id → integer amount */
    coupons?: { [key: string]: number };
    /** id → integer amount */
    repaid?: { [key: string]: number };
  };
  /** id → integer amount */
  wallet: { [key: string]: number };
};

/** joinTeam 200: Join the team of a share code (full: 409 team_full); without a code, be matched into an open team (seasons with auto-match) */
export type JoinTeamResponse = {
  season: string;
  team: string;
  name: string;
  /** who created the team: masked for shoppers, whole in the merchant's view */
  owner: string;
  status: "upcoming" | "open" | "ended";
  created_at: number;
  open: boolean;
  /** members' points plus points kept from members who left */
  points: number;
  kept_points: number;
  size: number;
  min_size: number;
  max_size: number;
  seats_left: number;
  /** highest points first */
  members: Array<{
    /** masked for shoppers (oA***yz); whole in the merchant's view */
    user: string;
    points: number;
    joined_at: number;
    /** this member is the caller */
    me: boolean;
    /** this member created the team */
    owner: boolean;
  }>;
  milestones: Array<{
    id: string;
    points: number;
    reward: Reward;
    reached_at: number | null;
  }>;
  /** place on the season's board */
  rank: number | null;
  /** the share code (members only) */
  code: string;
  server_time: number;
};

/** leaveGroupBuy 200: Leave an open group (not its opener); what joining cost is given back */
export type LeaveGroupBuyResponse = {
  group: string;
  code: string;
  offer: string;
  title: string;
  size: number;
  members: Array<{
    /** masked */
    user: string;
    joined_at: number;
    opener: boolean;
    me: boolean;
    /** present (true) only on a seat an auto-completed group filled at its expiry */
    system?: boolean;
  }>;
  member_count: number;
  seats_left: number;
  state: "open" | "complete" | "failed";
  created_at: number;
  expires_at: number;
  price_fen: number;
  server_time: number;
  /** present when this seat completed the group: what this shopper was granted (granted: false and a reason when nothing was) */
  reward?: {
    granted: boolean;
    reason?: "already" | "sold_out";
    /** id → integer amount */
    currency?: { [key: string]: number };
    /** id → integer amount */
    items?: { [key: string]: number };
    /** id → integer amount */
    coupons?: { [key: string]: number };
    /** id → integer amount */
    repaid?: { [key: string]: number };
  };
  /** id → integer amount */
  wallet: { [key: string]: number };
  /** what joining cost, given back */
  refunded: { [key: string]: number };
};

/** leaveTeam 200: Leave the current team of the season, as its rules allow */
export type LeaveTeamResponse = {
  season: string;
  team: string;
  left: boolean;
  points_kept_by_team: number;
  team_points: number;
};

/** listDraws 200: The player's draws, newest first, with what is needed to verify each */
export type ListDrawsResponse = {
  draws: Array<{
    series: string;
    position?: number;
    item: string;
    rarity: string;
    kind: string;
    prize?: {
      type: string;
      name?: string;
      template?: string | null;
      sku?: string | null;
      face_value_fen?: number | null;
    } | null;
    nonce: number;
    seed_hash: string;
    client_seed: string;
    table?: string;
    version?: number;
    pity_before?: {
      hard: number;
      soft: number;
    };
    pity_after?: {
      hard: number;
      soft: number;
    };
    forced?: string | null;
    level?: number;
    roll?: number;
    total?: number;
    out?: Array<string>;
    excluded?: Array<string>;
    at: number;
    id?: number;
    server_seed?: string | null;
  }>;
  next_cursor: number | null;
};

/** listExperiments 200: Experiments of the live config */
export type ListExperimentsResponse = {
  game: string;
  /** the live version */
  game_version: number;
  experiments: Array<Experiment>;
};

/** listGames 200: The API key's merchant and its games: live version and whether a draft exists */
export type ListGamesResponse = {
  merchant: string;
  name: string;
  games: Array<{
    game: string;
    live_version: number | null;
    has_draft: boolean;
    draft_updated_at: number | null;
    updated_at: number;
  }>;
};

/** listGameVersions 200: Published versions of a game, newest first, with the live version and draft */
export type ListGameVersionsResponse = {
  game: string;
  live_version: number | null;
  draft: {
    updated_at: number;
    checksum: string;
  } | null;
  versions: Array<{
    version: number;
    checksum: string;
    published_at: number;
    note: string;
  }>;
};

/** listGroupBuys 200: Open groups of an offer a shopper may join */
export type ListGroupBuysResponse = {
  offer: string;
  title: string;
  size: number;
  price_fen: number;
  server_time: number;
  groups: Array<{
    group: string;
    code: string;
    offer: string;
    title: string;
    size: number;
    members: Array<{
      /** masked */
      user: string;
      joined_at: number;
      opener: boolean;
      me: boolean;
      /** present (true) only on a seat an auto-completed group filled at its expiry */
      system?: boolean;
    }>;
    member_count: number;
    seats_left: number;
    state: "open" | "complete" | "failed";
    created_at: number;
    expires_at: number;
    price_fen: number;
    server_time: number;
  }>;
};

/** listGroupBuysAdmin 200: The merchant's view of a group-buy offer: open groups with their members, how many are open, its stock */
export type ListGroupBuysAdminResponse = {
  offer: string;
  title: string;
  size: number;
  duration_s: number;
  auto_complete: boolean;
  server_time: number;
  /** open groups of the offer */
  open: number;
  groups: Array<{
    group: string;
    code: string;
    offer: string;
    title: string;
    size: number;
    members: Array<{
      /** masked */
      user: string;
      joined_at: number;
      opener: boolean;
      me: boolean;
      /** present (true) only on a seat an auto-completed group filled at its expiry */
      system?: boolean;
    }>;
    member_count: number;
    seats_left: number;
    state: "open" | "complete" | "failed";
    created_at: number;
    expires_at: number;
    price_fen: number;
    server_time: number;
    users: Array<string>;
  }>;
  /** getStock's row of the offer's stock, or null */
  stock: Record<string, unknown>;
};

/** listMyCoupons 200: The shopper's coupons: code, face value, template, expiry and state */
export type ListMyCouponsResponse = {
  coupons: Array<{
    /** the coupon's code (unguessable) */
    code: string;
    /** its id: a `coupons` entry or a blind-box prize */
    coupon: string;
    name: string;
    /** the merchant's coupon template */
    template: string;
    /** value in fen (¥0.01) */
    face_value_fen: number;
    granted_at: number;
    /** null: never expires */
    expires_at: number | null;
    state: "issued" | "redeemed" | "expired" | "void";
    redeemed_at: number | null;
  }>;
  /** coupons per state (issued, redeemed, expired) */
  counts: { [key: string]: number };
};

/** listMySamples 200: The campaigns the shopper applied to: applied, waitlisted, won or lost, and the review task */
export type ListMySamplesResponse = {
  samples: Array<{
    campaign: string;
    sku: string;
    status: "applied" | "waitlisted" | "won" | "lost";
    applied_at: number;
    won_at: number | null;
    reviewed: boolean;
    review_until: number | null;
  }>;
};

/** listWebhookEvents 200: Events owed to the merchant's backend (signed POSTs to the game's webhook_url, at least once, deduped by X-Petbox-Delivery), newest first; ?state= pending, delivered or failed; ?limit= 1..500 (default 100) */
export type ListWebhookEventsResponse = {
  events: Array<{
    key: string;
    event: string;
    game: string;
    data: Record<string, unknown>;
    created_at: number;
    state: "pending" | "delivered" | "failed";
    tries: number;
    delivered_at: number | null;
  }>;
};

/** makeupCheckIn 200: 补签: check in a missed day of the makeup window, for its cost */
export type MakeupCheckInResponse = {
  day: string;
  streak: number;
  cycle_day: number;
  player: Player;
};

/** metrics 200: Prometheus metrics */
export type MetricsResponse = string;

/** openapi 200: This document */
export type OpenapiResponse = {
  openapi: string;
  info: Record<string, unknown>;
  paths: Record<string, unknown>;
  components: Record<string, unknown>;
};

/** playWithPet 200: Play with the pet: mood and xp, then a cooldown */
export type PlayWithPetResponse = {
  /** the growth stages reached by this action (their rewards granted) */
  stages: Array<string>;
  player: Player;
};

/** publishGame 200: Publish the draft as the next immutable version, live on every server process within a second (changed: false if it is live already) */
export type PublishGameResponse = {
  game: string;
  version: number;
  live_version: number;
  checksum: string;
  published_at: number;
  note: string;
  /** false when the config was live already (nothing published) */
  changed: boolean;
};

/** putExperiment 200: Create or edit an experiment; publishes a new version (every arm's merged config validated); 409 once started for allocation, arms or metrics */
export type PutExperimentResponse = {
  experiment: Experiment;
  published: Record<string, unknown>;
  draft?: string;
};

/** putGameDraft 200: Store a full game config as the draft (creates the game if new); 422 lists every problem with its JSON path and stores nothing */
export type PutGameDraftResponse = {
  game: string;
  updated_at: number;
  checksum: string;
  live_version: number | null;
};

/** readyz 200: Readiness: Redis and SQL reachable */
export type ReadyzResponse = {
  status: string;
  checks: { [key: string]: string };
  redis_nodes: Array<Record<string, unknown>>;
  workers: {
    ready: number;
    expected: number;
    degraded: boolean;
  };
};

/** redeemCoupon 200: Mark a coupon used at checkout (idempotent) */
export type RedeemCouponResponse = {
  coupon: {
    /** the coupon's code (unguessable) */
    code: string;
    /** its id: a `coupons` entry or a blind-box prize */
    coupon: string;
    name: string;
    /** the merchant's coupon template */
    template: string;
    /** value in fen (¥0.01) */
    face_value_fen: number;
    granted_at: number;
    /** null: never expires */
    expires_at: number | null;
    state: "issued" | "redeemed" | "expired" | "void";
    redeemed_at: number | null;
    reference: string;
  };
};

/** reservePresale 200: Reserve (提前购) before the event; converted by a paid order with the presale's SKU by convert_until, else released */
export type ReservePresaleResponse = {
  /** the hold's id (shown in getPlayer) */
  hold: string;
  sale: string;
  status: "held";
  claimed_at: number;
  /** paid (converted) by then, or it expires */
  until: number;
  sku: string;
  price_fen: number;
  deposit_fen: number;
  /** priority: priority_until is shown; deposit_multiplier: deposit_value_fen */
  benefit: "priority" | "deposit_multiplier";
  event_at: number;
  priority_until?: number;
  deposit_value_fen?: number;
};

/** reviewSample 200: A winner's review report (once); rewards the configured amount */
export type ReviewSampleResponse = {
  campaign: string;
  reviewed_at: number;
  /** id → integer amount */
  reward: { [key: string]: number };
  /** id → integer amount */
  wallet: { [key: string]: number };
};

/** rollbackGame 200: Make an older version's config live again, published as a new version (note 'rollback to vN'); the draft is left as it is */
export type RollbackGameResponse = {
  game: string;
  version: number;
  live_version: number;
  checksum: string;
  published_at: number;
  note: string;
  /** false when the config was live already (nothing published) */
  changed: boolean;
};

/** rotateSeed 200: Reveal the current server seed and commit to a new one */
export type RotateSeedResponse = {
  revealed: {
    server_seed: string;
    seed_hash: string;
    nonces: number;
  } | null;
  seed_hash: string;
  nonce: number;
};

/** setStock 200: Add (or remove) stock of a limited prize; never below what is taken */
export type SetStockResponse = {
  game: string;
  /** ref: prize:<item>, coupon:<template> or offer:<offer> */
  stock: {
    ref: string;
    total: number;
    reserved: number;
    granted: number;
    left: number;
  };
};

/** shipExperimentArm 200: Publish an arm's merged config as the next version (confirm: false shows the diff only) */
export type ShipExperimentArmResponse = {
  /** the experiment's id (confirm: false) or the experiment as now stored */
  experiment: Record<string, unknown>;
  arm?: string;
  confirm_required?: boolean;
  published?: Record<string, unknown>;
};

/** simulateEnvelopeRain 200: Simulate a round of the live rain (or other terms): the distribution of envelope sizes and the expected cost per shopper */
export type SimulateEnvelopeRainResponse = {
  rain: string;
  round: string;
  pool_fen: number;
  envelopes: number;
  min_fen: number;
  grab_limit: number;
  runs: number;
  shoppers: number;
  envelopes_grabbed: number;
  sizes_fen: { [key: string]: number };
  /** share of envelopes at the minimum */
  at_minimum: number;
  expected_cost_fen: number;
  expected_cost_per_shopper_fen: number;
  returned_fen: number;
  chance_of_envelope: number;
};

/** simulateGame 200: Monte Carlo over a series of the draft or a version: distribution per item and tier, pity rates, prize cost per draw, draws to complete the set, sell-out points (players × draws ≤ 1000000) */
export type SimulateGameResponse = {
  game: string;
  config: string;
  series: string;
  seed?: string;
  stock?: { [key: string]: number };
  players: number;
  draws: number;
  batch?: number;
  items: { [key: string]: {
    count: number;
    rate: number;
  } };
  tiers: { [key: string]: {
    count: number;
    rate: number;
  } };
  pity?: { [key: string]: number };
  prize_cost_fen_per_draw?: number;
  price_per_draw?: Record<string, unknown>;
  complete_set?: Record<string, unknown>;
  sold_out_at_draw?: { [key: string]: number | null };
};

/** spendEnergy 200: Spend energy; it refills over time up to its max (a new player is full) */
export type SpendEnergyResponse = {
  spent: number;
  player: Player;
};

/** startAssist 200: Start a friend assist (助力) of the campaign and get its share code */
export type StartAssistResponse = {
  /** the assist's id: its share code */
  assist: string;
  /** share code (10 base32 characters) */
  code: string;
  campaign: string;
  needed: number;
  helps: number;
  expires_at: number;
};

/** startTask 200: Start a task; browse tasks get a signed ticket to complete with */
export type StartTaskResponse = {
  task: string;
  /** browse tasks only (null for the others) */
  ticket: string | null;
  complete_after: number;
};

/** stopExperiment 200: Stop an experiment: everyone back on the live config (a new version) */
export type StopExperimentResponse = {
  experiment: Experiment;
  published: Record<string, unknown>;
  draft?: string;
};

/** Each operation's success body, by operationId. */
export interface Responses {
  adoptPet: AdoptPetResponse;
  applySample: ApplySampleResponse;
  castVote: CastVoteResponse;
  checkIn: CheckInResponse;
  claimFlashSale: ClaimFlashSaleResponse;
  claimTeamRewards: ClaimTeamRewardsResponse;
  cleanPet: CleanPetResponse;
  collectProduce: CollectProduceResponse;
  completeTask: CompleteTaskResponse;
  console: ConsoleResponse;
  consoleAsset: ConsoleAssetResponse;
  createGroupBuy: CreateGroupBuyResponse;
  createSession: CreateSessionResponse;
  createTeam: CreateTeamResponse;
  diffGameVersions: DiffGameVersionsResponse;
  drawBox: DrawBoxResponse;
  drawSampleWinners: DrawSampleWinnersResponse;
  erasePlayer: ErasePlayerResponse;
  exchange: ExchangeResponse;
  exportEvents: ExportEventsResponse;
  feedPet: FeedPetResponse;
  getAnalytics: GetAnalyticsResponse;
  getAssist: GetAssistResponse;
  getAssistAdmin: GetAssistAdminResponse;
  getAssistCampaignAdmin: GetAssistCampaignAdminResponse;
  getBoxSeries: GetBoxSeriesResponse;
  getEnvelopeRain: GetEnvelopeRainResponse;
  getExperiment: GetExperimentResponse;
  getExperimentResults: GetExperimentResultsResponse;
  getFlashSale: GetFlashSaleResponse;
  getGameDraft: GetGameDraftResponse;
  getGameVersion: GetGameVersionResponse;
  getGroupBuy: GetGroupBuyResponse;
  getLeaderboard: GetLeaderboardResponse;
  getPlayer: GetPlayerResponse;
  getPlayerAdmin: GetPlayerAdminResponse;
  getPoll: GetPollResponse;
  getPresale: GetPresaleResponse;
  getSampleCampaign: GetSampleCampaignResponse;
  getSampleCampaignAdmin: GetSampleCampaignAdminResponse;
  getStock: GetStockResponse;
  getTeam: GetTeamResponse;
  getTeamAdmin: GetTeamAdminResponse;
  getTeamSeasonAdmin: GetTeamSeasonAdminResponse;
  giveAssist: GiveAssistResponse;
  grabEnvelope: GrabEnvelopeResponse;
  grantPlayer: GrantPlayerResponse;
  healthz: HealthzResponse;
  ingestOrder: IngestOrderResponse;
  joinGroupBuy: JoinGroupBuyResponse;
  joinTeam: JoinTeamResponse;
  leaveGroupBuy: LeaveGroupBuyResponse;
  leaveTeam: LeaveTeamResponse;
  listDraws: ListDrawsResponse;
  listExperiments: ListExperimentsResponse;
  listGames: ListGamesResponse;
  listGameVersions: ListGameVersionsResponse;
  listGroupBuys: ListGroupBuysResponse;
  listGroupBuysAdmin: ListGroupBuysAdminResponse;
  listMyCoupons: ListMyCouponsResponse;
  listMySamples: ListMySamplesResponse;
  listWebhookEvents: ListWebhookEventsResponse;
  makeupCheckIn: MakeupCheckInResponse;
  metrics: MetricsResponse;
  openapi: OpenapiResponse;
  playWithPet: PlayWithPetResponse;
  publishGame: PublishGameResponse;
  putExperiment: PutExperimentResponse;
  putGameDraft: PutGameDraftResponse;
  readyz: ReadyzResponse;
  redeemCoupon: RedeemCouponResponse;
  reservePresale: ReservePresaleResponse;
  reviewSample: ReviewSampleResponse;
  rollbackGame: RollbackGameResponse;
  rotateSeed: RotateSeedResponse;
  setStock: SetStockResponse;
  shipExperimentArm: ShipExperimentArmResponse;
  simulateEnvelopeRain: SimulateEnvelopeRainResponse;
  simulateGame: SimulateGameResponse;
  spendEnergy: SpendEnergyResponse;
  startAssist: StartAssistResponse;
  startTask: StartTaskResponse;
  stopExperiment: StopExperimentResponse;
}
