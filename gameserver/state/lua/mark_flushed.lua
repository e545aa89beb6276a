-- mark_flushed.lua: record that SQL now holds given player versions (DESIGN.md, "Persister").
-- Runs after the SQL transaction committed. A player stays dirty if it changed since
-- it was read for the flush; the flushed mark `f` never moves backwards.
-- KEYS[1] shard dirty zset     KEYS[1+i] player hash of the i-th player
-- ARGV[2i-1] i-th member       ARGV[2i] i-th flushed version ('' = hash was missing)
-- Returns the number of members removed from the dirty set.
local removed = 0
for i = 2, #KEYS do
  local member = ARGV[2 * (i - 1) - 1]
  local flushed = ARGV[2 * (i - 1)]
  local p = redis.call('HMGET', KEYS[i], 'v', 'f')
  if not p[1] then
    -- Nothing to flush any more (deleted): it cannot stay dirty.
    removed = removed + redis.call('ZREM', KEYS[1], member)
  elseif flushed ~= '' then
    local v = tonumber(flushed)
    if not p[2] or tonumber(p[2]) < v then
      redis.call('HSET', KEYS[i], 'f', flushed)
    end
    if p[1] == flushed then
      removed = removed + redis.call('ZREM', KEYS[1], member)
    end
  end
end
return removed
