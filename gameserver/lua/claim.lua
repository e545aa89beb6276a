-- claim.lua: claim an idempotency key for one request before it holds limited stock
-- (value tier): a concurrent duplicate then waits for this request's reply instead of
-- holding stock of its own. Actions without limited prizes never claim (see load.lua).
-- KEYS[1] idempotency hash (h, t, c as in load.lua)
-- ARGV[1] request hash   ARGV[2] this request's in-flight token
-- ARGV[3] in-flight marker TTL in ms (a crashed server's claim dies by itself)
-- Returns {'ok'} claimed (or already ours) | {'used'} the key was used: load again to
--       replay | {'mismatch'} | {'pending'} another request holds the claim
local idem = redis.call('HMGET', KEYS[1], 'h', 't', 'c')
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'mismatch'} end
  if idem[3] then return {'used'} end
  if idem[2] ~= ARGV[2] then return {'pending'} end
  return {'ok'}
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'ok'}
