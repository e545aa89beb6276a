-- stock_unhold.lua: end a hold (stock_reserve.lua), giving its units back or not.
-- Exactly once: only the call that removes the member acts, so the process that made
-- the hold and the reconciler can both try.
-- KEYS[1] stock hash   KEYS[2] holds zset
-- ARGV[1] the hold's member ("id|epoch|ref|n|...")   ARGV[2] '1' = give the units back
-- (SQL never took them), '0' = drop the record only (SQL has the units now)
-- Units go back only to the gate generation they came from: a gate rebuilt from SQL
-- since then counts them already.
-- Returns 1 if units went back, 0 otherwise.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 or ARGV[2] ~= '1' then return 0 end
local parts = {}
for part in string.gmatch(ARGV[1], '[^|]+') do parts[#parts + 1] = part end
if redis.call('HGET', KEYS[1], '_epoch') ~= parts[2] then return 0 end
for i = 3, #parts, 2 do
  if redis.call('HEXISTS', KEYS[1], parts[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], parts[i], tonumber(parts[i + 1]))
  end
end
return 1
