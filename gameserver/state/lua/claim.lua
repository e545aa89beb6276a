-- claim.lua: claim an idempotency key for one request before it holds limited stock
-- (value tier), or before a shared aggregate's gate commits (aggregates_gate.py): a
-- concurrent duplicate then waits for this request's reply instead of acting twice, and
-- the same key with another request is refused before anything changed.
-- Actions without limited prizes or a gate never claim (see load.lua).
-- KEYS[1] idempotency hash (h, t, c, g as in load.lua)
-- ARGV[1] request hash   ARGV[2] this request's in-flight token
-- ARGV[3] in-flight marker TTL in ms (a crashed server's claim dies by itself)
-- ARGV[4] '1': a gate's claim, which the same request may take over (a retry after its
--         first run died must not wait for the marker to expire; the gate and the
--         commit are idempotent by key, so two runs of one request act once), unless
--         the claim is locked: any other claim locks it (l), as its owner is about to
--         hold limited stock, which only one run may do
-- Returns {'ok'} claimed (or already ours) | {'used'} the key was used: load again to
--       replay | {'mismatch'} | {'pending'} another request holds the claim
local idem = redis.call('HMGET', KEYS[1], 'h', 't', 'c', 'l')
local share = ARGV[4] == '1'
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'mismatch'} end
  if idem[3] then return {'used'} end
  if idem[2] and idem[2] ~= ARGV[2] and (not share or idem[4]) then return {'pending'} end
  -- ours; bound to a gate by an earlier run of this request (bind.lua); or a gate's
  -- unlocked claim by another run of it: take it
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', ARGV[2])
if not share then redis.call('HSET', KEYS[1], 'l', 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'ok'}
