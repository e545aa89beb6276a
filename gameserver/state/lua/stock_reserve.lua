-- stock_reserve.lua: reserve units of several limited refs in one bucket of a game's
-- gate, as many as the bucket has up to what is asked (the caller asks the other
-- buckets for the rest), and record what was taken as a hold with a deadline, in the
-- same script (so a process killed before SQL confirmed the units leaves a record the
-- reconciler can give back).
-- KEYS[1] bucket hash (_epoch, ref -> units left)   KEYS[2] the bucket's holds zset
-- ARGV[1] hold id (the attempt's commit id)   ARGV[2] the hold's deadline, unix ms
-- ARGV[3..] pairs ref, units wanted
-- The hold's member is "id|epoch|ref|n|ref|n..." (what was taken; all stock_unhold.lua
-- needs); its score is the deadline.
-- Returns {'ok', epoch, member, taken per ref in ARGV order, left per ref after}
--   (member '' when nothing was taken) | {'not_ready'} (no bucket or a ref missing:
--   rebuild from SQL first; nothing taken)
local epoch = redis.call('HGET', KEYS[1], '_epoch')
if not epoch then return {'not_ready'} end
local lefts = {}
for i = 3, #ARGV, 2 do
  local left = redis.call('HGET', KEYS[1], ARGV[i])
  if not left then return {'not_ready'} end
  lefts[#lefts + 1] = tonumber(left)
end
local parts = {ARGV[1], epoch}
local taken, after = {}, {}
for i = 3, #ARGV, 2 do
  local k = (i - 1) / 2
  local n = math.max(0, math.min(lefts[k], tonumber(ARGV[i + 1])))
  taken[k], after[k] = n, lefts[k] - n
  if n > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], -n)
    parts[#parts + 1] = ARGV[i]
    parts[#parts + 1] = n
  end
end
local member = ''
if #parts > 2 then
  member = table.concat(parts, '|')
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
local reply = {'ok', epoch, member}
for k = 1, #taken do reply[#reply + 1] = taken[k] end
for k = 1, #after do reply[#reply + 1] = after[k] end
return reply
