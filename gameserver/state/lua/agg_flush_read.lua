-- agg_flush_read.lua: one consistent snapshot of an aggregate shard for write-behind:
-- the oldest ledger entries and the state of given dirty aggregates, read together,
-- so the states written to SQL never include a commit whose entry is not written
-- with them (the entry carries the gate's key: see aggregate_ledger in models.py).
-- Reads only. KEYS[1] shard ledger stream; KEYS[1+i] i-th aggregate hash
-- ARGV[1] most entries to read
-- Returns {entries, more, {v1, s1, v2, s2, ...}}: more = 1 when the stream holds more
-- entries than were read (then the states must wait for a later pass).
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
local more = 0
if redis.call('XLEN', KEYS[1]) > #entries then more = 1 end
local states = {}
for i = 2, #KEYS do
  local g = redis.call('HMGET', KEYS[i], 'v', 's')
  states[2 * i - 3] = g[1] or false
  states[2 * i - 2] = g[2] or false
end
return {entries, more, states}
