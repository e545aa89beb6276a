-- stock_reserve.lua: reserve units of several limited refs, all or nothing, and record
-- the reservation as a hold with a deadline, in the same script (so a process killed
-- before SQL confirmed the units leaves a record the reconciler can give back).
-- KEYS[1] stock hash (_epoch, ref -> units left)   KEYS[2] holds zset (same slot)
-- ARGV[1] hold id (the attempt's commit id)   ARGV[2] the hold's deadline, unix ms
-- ARGV[3..] pairs ref, units
-- The hold's member is "id|epoch|ref|n|ref|n..." (all stock_unhold.lua needs); its
-- score is the deadline.
-- Returns {'ok', epoch, member} | {'not_ready'} (no gate: rebuild from SQL first)
--       | {'short', ref, left} (nothing was reserved)
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch then return {'not_ready'} end
for i = 3, #ARGV, 2 do
  local left = redis.call('HGET', KEYS[1], ARGV[i])
  if not left then return {'not_ready'} end
  if tonumber(left) < tonumber(ARGV[i + 1]) then return {'short', ARGV[i], left} end
end
local parts = {ARGV[1], epoch}
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1]))
  parts[#parts + 1] = ARGV[i]
  parts[#parts + 1] = ARGV[i + 1]
end
local member = table.concat(parts, '|')
redis.call('ZADD', KEYS[2], ARGV[2], member)
return {'ok', epoch, member}
