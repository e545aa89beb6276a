-- commit.lua: apply one action's outcome atomically (DESIGN.md, "The action pipeline").
-- All preconditions are checked before the first write: Redis does not roll back.
-- KEYS[1] player hash (v, s)         KEYS[2] idempotency hash (h, t, r, c)
-- KEYS[3] shard dirty zset           KEYS[4] shard active zset
-- KEYS[5] shard ledger stream
-- ARGV[1] expected version           ARGV[2] '1' = the player must not exist yet
-- ARGV[3] new state (msgpack)        ARGV[4] in-flight token of this request
-- ARGV[5] response status            ARGV[6] response body
-- ARGV[7] idempotency TTL in ms      ARGV[8] now in ms
-- ARGV[9] player member (merchant:game:user)
-- ARGV[10] commit id (kept in the idempotency hash as x, for reconciliation)
-- ARGV[11] ledger entries (msgpack) or ''
-- ARGV[12] request hash             ARGV[13] events (msgpack) or ''
-- Returns {1, new_version} committed | {0, current_version} version conflict
--       | {-1, 0} the idempotency key is no longer this request's
local current = redis.call('HGET', KEYS[1], 'v')
if ARGV[2] == '1' then
  if current then return {0, tonumber(current)} end
elseif current ~= ARGV[1] then
  return {0, tonumber(current or '0')}
end
local idem = redis.call('HMGET', KEYS[2], 'h', 't', 'r')
if idem[3] or (idem[1] and idem[2] ~= ARGV[4]) then return {-1, 0} end

local version = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'v', version, 's', ARGV[3])
redis.call('HSET', KEYS[2], 'h', ARGV[12], 'r', ARGV[6], 'c', ARGV[5], 'x', ARGV[10])
redis.call('HDEL', KEYS[2], 't')
redis.call('PEXPIRE', KEYS[2], ARGV[7])
if ARGV[11] ~= '' or ARGV[13] ~= '' then
  redis.call('XADD', KEYS[5], '*', 'c', ARGV[10], 'p', ARGV[9], 'v', version,
             'd', ARGV[11], 'e', ARGV[13])
end
redis.call('ZADD', KEYS[3], 'NX', ARGV[8], ARGV[9])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[9])
return {1, version}
