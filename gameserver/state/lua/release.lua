-- release.lua: give up an idempotency key this request claimed but did not use
-- (the rule refused the action, so nothing changed and a retry may run afresh).
-- KEYS[1] idempotency hash   ARGV[1] in-flight token of this request
-- Returns 1 if released, 0 if the key was not (or no longer) this request's.
local t = redis.call('HMGET', KEYS[1], 't', 'c')
if t[1] == ARGV[1] and not t[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
