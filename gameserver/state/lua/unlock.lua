-- unlock.lua: free a lock only if this holder's token still holds it (one that
-- outlived its TTL may be another holder's by now).
-- KEYS[1] lock key   ARGV[1] this holder's token
-- Returns 1 if freed, 0 if the lock was not (or no longer) this holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
