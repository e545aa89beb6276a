-- agg_commit.lua: commit one action on an aggregate (a poll bucket, a group, a pool);
-- in the two-commit protocol this is the gate (docs/architecture.md, "Aggregates").
-- All preconditions are checked before the first write: Redis does not roll back.
-- Every key is in the aggregate's shard slot ({a<N>}), never in a shopper's.
-- KEYS[1] aggregate hash (v, s, f, o)   KEYS[2] shopper's idempotency hash at it
-- KEYS[3] shard dirty zset              KEYS[4] shard active zset
-- KEYS[5] shard ledger stream           KEYS[6] shard owed zset
-- KEYS[7] shard owed records hash
-- ARGV[1] one msgpack array:
--   [1] expected version   [2] true = must not exist (read back from SQL or new)
--   [3] new state          [4] response status      [5] response body
--   [6] idempotency TTL ms [7] now ms               [8] aggregate member
--   [9] commit id          [10] ledger entry (msgpack) or ''
--   [11] request hash      [12] owed field or ''    [13] owed record or ''
--   [14] user              [15] the Idempotency-Key
--   [16] read back from SQL after a loss: unix ms of the newest key SQL holds (the
--        hash keeps it as o: gates ask SQL about keys until it is a key lifetime old)
--        or false
--   [17] owed records of other shoppers (SharedOutcome.others), flat:
--        field, record, field, record … (may be empty or absent)
-- The ledger entry carries the new state as field n: the persister writes it to SQL
-- with the entry (and its key), whatever else the stream holds; entries of servers
-- before it have no n, and their state goes with a snapshot that holds the whole stream.
-- Returns {1, version} | {0, current version} | {-1, 0} key already used
local a = cmsgpack.unpack(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'v')
if a[2] then
  if current then return {0, tonumber(current)} end
elseif tonumber(current or '-1') ~= a[1] then
  return {0, tonumber(current or '0')}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end

local version = a[1] + 1
redis.call('XADD', KEYS[5], '*', 'c', a[9], 'g', a[8], 'v', version, 'u', a[14],
           'k', a[15], 'h', a[11], 's', a[4], 'r', a[5], 'd', a[10], 't', a[7], 'n', a[3])
if a[2] then redis.call('DEL', KEYS[1]) end  -- a tombstone (x) goes
redis.call('HSET', KEYS[1], 'v', version, 's', a[3])
if a[16] then redis.call('HSET', KEYS[1], 'o', a[16]) end
redis.call('HSET', KEYS[2], 'h', a[11], 'c', a[4], 'r', a[5], 'x', a[9])
redis.call('PEXPIRE', KEYS[2], a[6])
if a[12] ~= '' then
  redis.call('ZADD', KEYS[6], 'NX', a[7], a[12])
  redis.call('HSET', KEYS[7], a[12], a[13])
end
local others = a[17] or {}
for i = 1, #others, 2 do
  redis.call('ZADD', KEYS[6], 'NX', a[7], others[i])
  redis.call('HSET', KEYS[7], others[i], others[i + 1])
end
redis.call('ZADD', KEYS[3], 'NX', a[7], a[8])
redis.call('ZADD', KEYS[4], a[7], a[8])
return {1, version}
