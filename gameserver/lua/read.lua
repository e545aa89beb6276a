-- read.lua: a player's version and state for a read-only request (getPlayer and the
-- like). A script, not a plain HMGET, only so that it can travel in the action path's
-- pipelines (gameserver/batching.py sends EVALSHA calls).
-- KEYS[1] player hash (v = version, s = msgpack state)
-- Returns {version, state}, each nil when the player is not in Redis.
return redis.call('HMGET', KEYS[1], 'v', 's')
