-- bind.lua: keep an idempotency key this request claimed (claim.lua) bound to it for the
-- key's lifetime, when a shared aggregate's gate holds the reply and the shopper's own
-- state does not change (aggregates_gate.py): the same key with another request is then
-- refused (load.lua, claim.lua: mismatch), and a retry goes to the gate, which replays.
-- KEYS[1] idempotency hash   ARGV[1] this request's in-flight token   ARGV[2] TTL in ms
-- Returns 1 if bound, 0 if the key was not (or no longer) this request's claim.
local t = redis.call('HMGET', KEYS[1], 't', 'c')
if t[1] ~= ARGV[1] or t[2] then return 0 end
redis.call('HSET', KEYS[1], 'g', 1)
redis.call('HDEL', KEYS[1], 't', 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
