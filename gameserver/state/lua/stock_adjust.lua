-- stock_adjust.lua: give units back (a cancelled reservation) or add stock, but only
-- to the generation they belong to: after a rebuild from SQL the old units are
-- already counted there, and adding them again would over-count.
-- KEYS[1] stock hash   ARGV[1] epoch ('' = whatever is in force); then pairs ref, delta
-- Returns 1 if applied, 0 if the gate is gone or of another generation.
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch or (ARGV[1] ~= '' and epoch ~= ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
  end
end
return 1
