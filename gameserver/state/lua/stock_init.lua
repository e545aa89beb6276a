-- stock_init.lua: create a game's stock gate, or add fields it lacks (a new prize).
-- Fields already present are never overwritten: another process may have reserved.
-- KEYS[1] stock hash (field _epoch = generation; other fields: ref -> units left)
-- ARGV[1] epoch to use if the hash has none; then pairs: ref, units left (from SQL)
-- Returns the epoch in force.
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], '_epoch', epoch)
end
for i = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
return epoch
