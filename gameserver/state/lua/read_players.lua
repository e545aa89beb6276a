-- read_players.lua: version and state of players of one shard: the persister's flush reads
-- a shard's dirty players with one call instead of one HMGET each (the client's cost is
-- per command), and getPlayer reads one player with it, as a script so that the read
-- travels in the action path's pipelines (gameserver/state/batching.py sends EVALSHA calls).
-- Reads only. KEYS[i] player hash of the i-th player (all of one shard: one hash slot).
-- Returns {v1, s1, v2, s2, ...}; both are nil for a player whose hash is gone.
local out = {}
for i = 1, #KEYS do
  local p = redis.call('HMGET', KEYS[i], 'v', 's')
  out[2 * i - 1] = p[1]
  out[2 * i] = p[2]
end
return out
