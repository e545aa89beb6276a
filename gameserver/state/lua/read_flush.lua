-- read_flush.lua: version and state of dirty players of one shard, for the persister's
-- flush, holding back every player whose last commit's ledger entry is still in the
-- shard's stream. The persister deletes an entry only after its SQL transaction
-- committed, so a player state reaches SQL only after its ledger rows and stored
-- response: SQL never holds a state whose ledger it lacks (a Redis loss right after a
-- burst would otherwise leave such a state, and its acknowledged key, unrecorded).
-- Reads only. KEYS[1] the shard's ledger stream; KEYS[1+i] player hash of the i-th player
-- (fields v = version, s = state, e = stream entry id of the commit that wrote them).
-- Returns {v1, s1, v2, s2, ...}: nil, nil for a player whose hash is gone; -1, nil for a
-- player whose ledger is not drained yet (it stays dirty for a later pass).
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local first_ms, first_seq
if first then
  local dash = string.find(first[1], '-', 1, true)
  first_ms = tonumber(string.sub(first[1], 1, dash - 1))
  first_seq = tonumber(string.sub(first[1], dash + 1))
end
local function undrained(entry)
  if not entry or not first then return false end
  local dash = string.find(entry, '-', 1, true)
  local ms, seq = tonumber(string.sub(entry, 1, dash - 1)), tonumber(string.sub(entry, dash + 1))
  return ms > first_ms or (ms == first_ms and seq >= first_seq)
end
local out = {}
for i = 2, #KEYS do
  local p = redis.call('HMGET', KEYS[i], 'v', 's', 'e')
  if p[1] and undrained(p[3]) then
    out[2 * i - 3] = -1
    out[2 * i - 2] = false
  else
    out[2 * i - 3] = p[1]
    out[2 * i - 2] = p[2]
  end
end
return out
