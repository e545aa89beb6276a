-- park_ledger.lua: move ledger entries the persister cannot decode (e.g. a newer
-- release's, read by an older persister while a deployment rolls) from a shard's ledger
-- stream to its parked stream, where every pass tries them again, instead of dropping
-- them with their acknowledged commit's rows. The copy is added before the entry is
-- acknowledged and deleted: a failing XADD (e.g. Redis out of memory) stops the script
-- before the delete, and the entry stays pending for a later pass. An entry already gone
-- (deleted by a persister that claimed it) is only acknowledged.
-- KEYS[1] the shard's ledger stream, KEYS[2] its parked stream (one hash tag).
-- ARGV[1] the consumer group, ARGV[2..] the ids of the entries to park.
-- The copy has the entry's fields and one more, parked_id: the original id (its rows'
-- time). Returns the number of entries parked.
local parked = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
  if entry then
    local fields = entry[2]
    fields[#fields + 1] = 'parked_id'
    fields[#fields + 1] = id
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    parked = parked + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
end
return parked
