-- evict.lua: drop idle players or aggregates from Redis once SQL holds their current
-- version. Every condition is re-checked here, atomically, because the holder may have
-- committed between the persister's scan and this call. An aggregate leaves a
-- tombstone (x) for the idempotency lifetime: it tells the next read-through that the
-- keys at the aggregate are still in Redis (an eviction, not a data loss), so its gates
-- need not ask SQL about keys (agg_load.lua, AggregateStore).
-- KEYS[1] shard dirty zset   KEYS[2] shard active zset   KEYS[2+i] i-th state hash
-- ARGV[1] cutoff: unix ms; only states last active at or before it are evicted
-- ARGV[2] tombstone lifetime in ms (0: no tombstone, as for players)
-- ARGV[2+i] i-th member
-- Returns the number evicted.
local cutoff = tonumber(ARGV[1])
local tombstone_ms = tonumber(ARGV[2])
local evicted = 0
for i = 3, #KEYS do
  local member = ARGV[i]
  local last = redis.call('ZSCORE', KEYS[2], member)
  if last and tonumber(last) <= cutoff and not redis.call('ZSCORE', KEYS[1], member) then
    local h = redis.call('HMGET', KEYS[i], 'v', 'f')
    if not h[1] then
      redis.call('ZREM', KEYS[2], member)
    elseif h[1] == h[2] then
      redis.call('DEL', KEYS[i])
      if tombstone_ms > 0 then
        redis.call('HSET', KEYS[i], 'x', 1)
        redis.call('PEXPIRE', KEYS[i], tombstone_ms)
      end
      redis.call('ZREM', KEYS[2], member)
      evicted = evicted + 1
    end
  end
end
return evicted
