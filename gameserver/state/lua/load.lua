-- load.lua: read a player's state and what its idempotency key says, in one round trip.
-- Read-only, but for a shared aggregate's action that asks it to claim the key (ARGV[4]):
-- other actions claim their key only when they must hold limited stock (claim.lua);
-- otherwise the commit alone decides, so a load costs Redis no write and no AOF bytes.
-- KEYS[1] player hash (fields: v = version, s = msgpack state)
-- KEYS[2] idempotency hash (fields: h = request hash, t = in-flight token of a claim,
--         c = status of the stored response, x = commit id, e = the commit's ledger
--         stream entry, which holds the response body until the persister moved it to
--         SQL; r = the body itself, in records written before it moved there;
--         g = bound to a shared aggregate's gate, which holds the reply: bind.lua)
-- KEYS[3] the shard's ledger stream
-- ARGV[1] request hash   ARGV[2] this request's in-flight token
-- ARGV[3] '1': a shared aggregate's action, which may take over an unlocked claim of
--         the same request (claim.lua's ARGV[4]): such a claim is no reason to wait
-- ARGV[4] with ARGV[3]: claim TTL in ms (above 0: the key is free or this request's, so
--         claim it here, as claim.lua would, saving the gate's action a round trip)
-- ARGV[5] now (unix ms): a player whose erasure holds them (field z, erase.lua, until
--         then) is refused (absent: not checked)
-- Returns one of:
--   {'done', status, body}        the key was used before with this request: replay
--   {'stored', commit id}         the same, but the body is in SQL by now (responses)
--   {'mismatch'}                  the key was used with a different request
--   {'pending'}                   another request claimed this key and is still running
--   {'ok', version, state}        free, claimed by us, or bound with this request to a
--                                 gate (which replays it); version '' / state '' = no player
--   {'erased'}                    the player is being (or was just) erased: refused
local idem = redis.call('HMGET', KEYS[2], 'h', 't', 'c', 'r', 'e', 'x', 'g', 'l')
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'mismatch'} end
  if idem[3] then
    if idem[4] then return {'done', idem[3], idem[4]} end
    local entry = idem[5] and redis.call('XRANGE', KEYS[3], idem[5], idem[5])[1]
    if entry then
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'r' then return {'done', idem[3], fields[i + 1]} end
      end
    end
    return {'stored', idem[6]}
  end
  if idem[2] ~= ARGV[2] and not (ARGV[3] == '1' and not idem[8])
      and not (idem[7] and not idem[2]) then
    return {'pending'}
  end
end
local p = redis.call('HMGET', KEYS[1], 'v', 's', 'z')
-- A retry of a used key above still replays; anything new waits out the erasure.
-- (v = -1: erase.lua's tombstone, refused until it expires.)
if ARGV[5] and (p[1] == '-1' or (p[3] and tonumber(p[3]) > tonumber(ARGV[5]))) then
  return {'erased'}
end
if ARGV[3] == '1' and tonumber(ARGV[4] or '0') > 0 then
  redis.call('HSET', KEYS[2], 'h', ARGV[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {'ok', p[1] or '', p[2] or ''}
