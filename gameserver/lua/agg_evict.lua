-- agg_evict.lua: drop idle aggregates from Redis once SQL holds their current version,
-- leaving a tombstone (x) for the idempotency lifetime: it tells the next read-through
-- that the keys at the aggregate are still in Redis (an eviction, not a data loss), so
-- its gates need not ask SQL about keys (agg_load.lua, AggregateStore).
-- KEYS[1] shard dirty zset   KEYS[2] shard active zset   KEYS[2+i] i-th aggregate hash
-- ARGV[1] cutoff: unix ms; only aggregates last active at or before it are evicted
-- ARGV[2] tombstone lifetime in ms   ARGV[2+i] i-th member
-- Returns the number of aggregates evicted.
local cutoff = tonumber(ARGV[1])
local evicted = 0
for i = 3, #KEYS do
  local member = ARGV[i]
  local last = redis.call('ZSCORE', KEYS[2], member)
  if last and tonumber(last) <= cutoff and not redis.call('ZSCORE', KEYS[1], member) then
    local g = redis.call('HMGET', KEYS[i], 'v', 'f')
    if not g[1] then
      redis.call('ZREM', KEYS[2], member)
    elseif g[1] == g[2] then
      redis.call('DEL', KEYS[i])
      redis.call('HSET', KEYS[i], 'x', 1)
      redis.call('PEXPIRE', KEYS[i], ARGV[2])
      redis.call('ZREM', KEYS[2], member)
      evicted = evicted + 1
    end
  end
end
return evicted
