-- erase.lua: block a player for erasure (docs/privacy.md), in two steps, one call each.
-- Every call marks the player refused until ARGV[2] + ARGV[3] (field z: load.lua then
-- answers 'erased', so no new action of theirs starts on a host of this release). Once
-- nothing of the player is left for the persister (not dirty, the SQL copy current,
-- the last commit's ledger entry drained, as evict.lua and read_flush.lua judge it),
-- the same call replaces the player by a tombstone: the hash holds only v = -1 and z,
-- and expires with z (by Redis' own clock). v = -1 is a version no load ever gave, so
-- every commit whose load came before it is a conflict (commit.lua's version check),
-- on a previous release's host too, and with no state (s) beside it a cached copy
-- reloads and meets the tombstone.
-- KEYS[1] player hash   KEYS[2] shard dirty zset   KEYS[3] shard active zset
-- KEYS[4] shard ledger stream
-- ARGV[1] member   ARGV[2] now (unix ms)   ARGV[3] how long a waiting block holds (ms)
-- ARGV[4] tombstone lifetime (ms)
-- Returns 'blocked' (the tombstone is in place: the caller may erase the player's SQL
-- rows) or 'waiting' (the persister still owes SQL something of the player).
local now = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'v', 'f', 'e')
if h[1] == '-1' then
  return 'blocked'
end
redis.call('HSET', KEYS[1], 'z', now + tonumber(ARGV[3]))
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'waiting' end
if h[1] and h[1] ~= h[2] then return 'waiting' end
if h[3] then
  local first = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)[1]
  if first then
    local function parts(id)
      local dash = string.find(id, '-', 1, true)
      return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
    end
    local ems, eseq = parts(h[3])
    local fms, fseq = parts(first[1])
    if ems > fms or (ems == fms and eseq >= fseq) then return 'waiting' end
  end
end
local until_ms = now + tonumber(ARGV[4])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', -1, 'z', until_ms)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return 'blocked'
