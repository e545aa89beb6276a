-- load.lua: claim an idempotency key and read a player's state, in one round trip.
-- KEYS[1] player hash (fields: v = version, s = msgpack state)
-- KEYS[2] idempotency hash (fields: h = request hash, t = in-flight token,
--         r = stored response body, c = stored response status)
-- ARGV[1] request hash   ARGV[2] this request's in-flight token
-- ARGV[3] in-flight marker TTL in ms
-- Returns one of:
--   {'done', status, body}        the key was used before with this request: replay
--   {'mismatch'}                  the key was used with a different request
--   {'pending'}                   another request with this key is still running
--   {'ok', version, state}        claimed (or already ours); version '' / state '' = no player
local idem = redis.call('HMGET', KEYS[2], 'h', 't', 'r', 'c')
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'mismatch'} end
  if idem[3] then return {'done', idem[4], idem[3]} end
  if idem[2] ~= ARGV[2] then return {'pending'} end
else
  redis.call('HSET', KEYS[2], 'h', ARGV[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local p = redis.call('HMGET', KEYS[1], 'v', 's')
return {'ok', p[1] or '', p[2] or ''}
