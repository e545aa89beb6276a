-- stock_pay.lua: the receiving end of a move between two buckets of a game's gate (a
-- bucket below 0 paid with units another bucket gave up, stockgate.py): the giver's
-- bucket took the units and holds them as a hold ("pay.<bucket>.<token>|epoch|ref|n",
-- stock_reserve.lua), in its own slot; this script, in the receiver's slot, decides once
-- and for all whether the receiver gets them. The mark says what was decided: 'ok' (the
-- units are here: the giver's hold ends without giving back) or 'void' (never here: the
-- hold gives them back to the giver). The mover decides with ARGV[5] '1'; the
-- reconciler, finding the hold past its deadline, with '0' (close: 'void' unless the
-- mover got there first), so the units land in exactly one of the two buckets.
-- KEYS[1] receiving bucket hash   KEYS[2] the move's mark (keys.stock_pay, same slot)
-- ARGV[1] the receiver's epoch the debt belongs to   ARGV[2] mark TTL ms   ARGV[3] ref
-- ARGV[4] units   ARGV[5] '1' pay, '0' close
-- Returns 'ok' or 'void' (the decision, made now or before).
local mark = redis.call('GET', KEYS[2])
if mark then return mark end
local decision = 'void'
if ARGV[5] == '1' and redis.call('HGET', KEYS[1], '_epoch') == ARGV[1]
    and redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], tonumber(ARGV[4]))
  decision = 'ok'
end
redis.call('SET', KEYS[2], decision, 'PX', tonumber(ARGV[2]))
return decision
