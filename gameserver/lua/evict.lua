-- evict.lua: drop idle players from Redis once SQL holds their current version.
-- Every condition is re-checked here, atomically, because the player may have
-- committed between the persister's scan and this call.
-- KEYS[1] shard dirty zset   KEYS[2] shard active zset   KEYS[2+i] i-th player hash
-- ARGV[1] cutoff: unix ms; only players last active at or before it are evicted
-- ARGV[1+i] i-th member
-- Returns the number of players evicted.
local cutoff = tonumber(ARGV[1])
local evicted = 0
for i = 3, #KEYS do
  local member = ARGV[i - 1]
  local last = redis.call('ZSCORE', KEYS[2], member)
  if last and tonumber(last) <= cutoff and not redis.call('ZSCORE', KEYS[1], member) then
    local p = redis.call('HMGET', KEYS[i], 'v', 'f')
    if not p[1] then
      redis.call('ZREM', KEYS[2], member)
    elseif p[1] == p[2] then
      redis.call('DEL', KEYS[i])
      redis.call('ZREM', KEYS[2], member)
      evicted = evicted + 1
    end
  end
end
return evicted
