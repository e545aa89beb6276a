-- commit.lua: apply one action's outcome atomically (DESIGN.md, "The action pipeline").
-- All preconditions are checked before the first write: Redis does not roll back.
-- KEYS[1] player hash (v, s, e)      KEYS[2] idempotency hash (h, t, c, x, e)
-- KEYS[3] shard dirty zset           KEYS[4] shard active zset
-- KEYS[5] shard ledger stream        KEYS[6] shard reminder zset (only with reminders)
-- ARGV[1] one msgpack array (one argument, not fifteen: each argument costs the
--         client and the server more than the few bytes it carries):
--   [1] expected version              [2] true = the player must not exist yet
--   [3] new state (msgpack)           [4] in-flight token of this request
--   [5] response status               [6] response body
--   [7] idempotency TTL in ms         [8] now in ms
--   [9] player member (merchant:game:user)
--   [10] commit id (kept in the idempotency hash as x, for reconciliation)
--   [11] ledger entries (msgpack) or ''
--   [12] request hash                 [13] records (msgpack) or ''
--   [14] reminders to queue: {due, member, due, member, ...} (may be empty)
--   [15] the Idempotency-Key as the client sent it
--   [16] keys a read-through from SQL brings back: {{h, c, x, ttl_ms}, ...}, their
--        idempotency hashes in KEYS[7], KEYS[8], ... (KEYS[6] is then always given)
--   [17] the ledger entry the state was committed with ('' = not checked): given when
--        the state came from the server's own cache, so a version reached again after
--        Redis lost its data (the same number, another history) is a conflict too
--   [18] true: the ledger entry's id (whose milliseconds SQL keeps as the commit's time)
--        takes [8], the server's clock, instead of Redis' own (absent in production;
--        `petbox demo --history` replays past days; needs Redis 7 for 'ms-*' ids)
-- The records go into the entry as field t (servers before typed records wrote their
-- events as field e; the persister reads both). Field n is the new state itself: the
-- persister writes it to SQL in the transaction of the entry's ledger rows and stored
-- response, so SQL never holds a response without a state at least as new (entries of
-- servers before it have no n: their state goes by the flush alone).
-- The response body goes into the ledger stream entry (fields k, s, r; h the request
-- hash), which the persister writes to SQL (table responses); the idempotency hash
-- keeps only the request hash h, status c, commit id x and the entry id e, for the
-- key's lifetime.
-- load.lua finds the body in the entry while it is there, the store in SQL after.
-- Returns {1, new_version, entry} committed
--       | {0, current_version, state, entry} conflict (state and entry false when the
--         player is not in Redis): the caller can apply again without a load
--       | {-1, 0} the idempotency key was used (or is claimed) by another request
local a = cmsgpack.unpack(ARGV[1])
-- The key first: it must be unused (no status c yet), or claimed by this request
-- (claim.lua). A used key is a reload (which replays) even when the player changed
-- too: a retry must never be decided on the player's newer state instead (a cached
-- copy's conflict below hands that state back, and would refuse the retry).
local idem = redis.call('HMGET', KEYS[2], 'h', 't', 'c')
if idem[3] or (idem[1] and idem[2] ~= a[4]) then return {-1, 0} end
local p = redis.call('HMGET', KEYS[1], 'v', 'e')
local current = p[1]
local stale
if a[2] then
  stale = current
else
  stale = tonumber(current or '-1') ~= a[1] or (a[17] and a[17] ~= '' and p[2] ~= a[17])
end
if stale then
  if not current then return {0, 0, false, false} end
  return {0, tonumber(current), redis.call('HGET', KEYS[1], 's'), p[2]}
end

local version = a[1] + 1
local entry_id = '*'
if a[18] then entry_id = a[8] .. '-*' end
local entry = redis.call('XADD', KEYS[5], entry_id, 'c', a[10], 'p', a[9], 'v', version,
                         'd', a[11], 't', a[13], 'k', a[15], 's', a[5], 'r', a[6],
                         'h', a[12], 'n', a[3])
-- e: this commit's ledger entry; the flush holds the state back until it is drained.
redis.call('HSET', KEYS[1], 'v', version, 's', a[3], 'e', entry)
redis.call('HSET', KEYS[2], 'h', a[12], 'c', a[5], 'x', a[10], 'e', entry)
if idem[2] then redis.call('HDEL', KEYS[2], 't', 'l') end
redis.call('PEXPIRE', KEYS[2], a[7])
redis.call('ZADD', KEYS[3], 'NX', a[8], a[9])
redis.call('ZADD', KEYS[4], a[8], a[9])
if KEYS[6] and #a[14] > 0 then
  redis.call('ZADD', KEYS[6], unpack(a[14]))
end
-- Keys whose responses SQL holds, for a player Redis had lost or evicted: a retry of
-- one is replayed from SQL (load.lua's 'stored'), never applied again. A key with no
-- status yet is only a claim, and SQL says the key was used: the record replaces it.
-- (A shared action's retry claims its key before it reads the player through, and
-- its replay from SQL leaves that claim; kept, it stood in for the record once the
-- player was back, and the next retry took it over and applied the key again.)
for i = 7, #KEYS do
  local r = a[16][i - 6]
  if redis.call('HEXISTS', KEYS[i], 'c') == 0 then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], 'h', r[1], 'c', r[2], 'x', r[3])
    redis.call('PEXPIRE', KEYS[i], r[4])
  end
end
return {1, version, entry}
