-- agg_load.lua: read an aggregate and what a shopper's Idempotency-Key says at it, in
-- one round trip (read-only). The gate's record keeps its response body inline (r):
-- the shopper's second commit is driven from it, so it must outlive the stream entry.
-- KEYS[1] aggregate hash (v version, s msgpack state, f flushed version,
--         o: unix ms of the newest key SQL held when it was read back from SQL;
--         x alone: a tombstone, the aggregate was evicted and its keys are intact)
-- KEYS[2] the shopper's idempotency hash at this aggregate (h request hash,
--         c status, r body, x commit id)
-- ARGV[1] request hash
-- Returns {'done', status, body} | {'mismatch'}
--       | {'ok', version, state, o, evicted}  (version/state '' = not in Redis;
--         o '' = not set; evicted 1 = a tombstone is there)
local idem = redis.call('HMGET', KEYS[2], 'h', 'c', 'r')
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'mismatch'} end
  return {'done', idem[2], idem[3]}
end
local g = redis.call('HMGET', KEYS[1], 'v', 's', 'o', 'x')
local evicted = 0
if g[4] then evicted = 1 end
return {'ok', g[1] or '', g[2] or '', g[3] or '', evicted}
