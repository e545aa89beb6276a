-- read_players.lua: version and state of a shard's dirty players, for the persister's flush
-- (one call per shard instead of one HMGET per player: the client's cost is per command).
-- Reads only. KEYS[i] player hash of the i-th player (all of one shard: one hash slot).
-- Returns {v1, s1, v2, s2, ...}; both are nil for a player whose hash is gone.
local out = {}
for i = 1, #KEYS do
  local p = redis.call('HMGET', KEYS[i], 'v', 's')
  out[2 * i - 1] = p[1]
  out[2 * i] = p[2]
end
return out
