-- board_read.lua: the top of a leaderboard and one player's standing, of one moment.
-- Read-only, one key: on a Redis Cluster it runs where the key is, so a slot being
-- migrated is followed as any one-key command is (ASK to the importing node), which
-- a MULTI/EXEC of the same reads could not do.
-- KEYS[1] the board's sorted set (user -> score)
-- ARGV[1] how many entries from the top (>= 1)   ARGV[2] the asking player's user id
-- Returns {top, rank, score}: top is ZREVRANGE ... WITHSCORES (user, score, user, ...),
-- rank the player's 0-based ZREVRANK and score theirs, each false when off the board.
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[2])
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
return {top, rank, score}
