-- stock_change.lua: a merchant's setStock on the gate, applied at most once per key,
-- and only to the gate generation whose units the SQL change was made against (after
-- a rebuild from SQL the change is already counted there).
-- KEYS[1] stock hash   KEYS[2] the change's mark (keys.stock_change)
-- ARGV[1] epoch the change belongs to   ARGV[2] mark TTL ms   ARGV[3] ref   ARGV[4] delta
-- Returns 1 if applied now, 0 if applied before, -1 if the gate is gone or of another
-- generation (nothing to do: a rebuild reads SQL).
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch or epoch ~= ARGV[1] then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], tonumber(ARGV[4]))
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
