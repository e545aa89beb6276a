-- stock_change.lua: a merchant's setStock on one bucket of the gate, applied at most
-- once per key and bucket, and only to the bucket generation whose units the SQL
-- change was made against (after a rebuild from SQL the change is already counted
-- there). A removal takes no more than the bucket has (the caller takes the rest from
-- the next buckets), except on the last bucket asked (ARGV[5] '1'), which takes the
-- rest whatever it has: units missing from every bucket are held by attempts in flight,
-- which SQL's lower total refuses and whose units then come back, so the removal must
-- be owed (the count below 0) rather than dropped. What was applied is kept in the
-- mark, so a retry knows it.
-- KEYS[1] bucket hash   KEYS[2] the change's mark in this bucket (keys.stock_change)
-- ARGV[1] epoch the change belongs to   ARGV[2] mark TTL ms   ARGV[3] ref   ARGV[4] delta
-- ARGV[5] '1': take all of a removal, below 0 if need be
-- Returns {1, applied} if applied now, {0, applied} if applied before, {-1, 0} if the
-- bucket is gone or of another generation (nothing to do: a rebuild reads SQL).
local mark = redis.call('GET', KEYS[2])
if mark then return {0, tonumber(string.match(mark, '|(-?%d+)$') or '0')} end
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch or epoch ~= ARGV[1] then return {-1, 0} end
local delta = tonumber(ARGV[4])
local left = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or 'nil')
if not left then
  delta = 0
elseif delta < 0 and ARGV[5] ~= '1' then
  delta = -math.min(-delta, math.max(0, left))
end
if delta ~= 0 then redis.call('HINCRBY', KEYS[1], ARGV[3], delta) end
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. delta, 'PX', tonumber(ARGV[2]))
return {1, delta}
