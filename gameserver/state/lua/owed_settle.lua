-- owed_settle.lua: forget owed shopper commits that have been applied (idempotent:
-- settling twice, or from two hosts at once, removes nothing more).
-- KEYS[1] shard owed zset   KEYS[2] shard owed records hash   ARGV owed fields
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return #ARGV
