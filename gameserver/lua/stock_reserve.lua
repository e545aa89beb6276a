-- stock_reserve.lua: reserve units of several limited refs, all or nothing.
-- KEYS[1] stock hash (_epoch, ref -> units left)
-- ARGV: pairs ref, units
-- Returns {'ok', epoch} | {'not_ready'} (no gate: rebuild from SQL first)
--       | {'short', ref, left} (nothing was reserved)
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch then return {'not_ready'} end
for i = 1, #ARGV, 2 do
  local left = redis.call('HGET', KEYS[1], ARGV[i])
  if not left then return {'not_ready'} end
  if tonumber(left) < tonumber(ARGV[i + 1]) then return {'short', ARGV[i], left} end
end
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1]))
end
return {'ok', epoch}
