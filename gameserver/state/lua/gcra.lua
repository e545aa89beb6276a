-- gcra.lua: rate limits (generic cell rate algorithm) for several keys, all or nothing.
-- Each key holds its theoretical arrival time (TAT, ms). A request is allowed when,
-- for every key, TAT + interval - burst * interval <= now; then every TAT moves on.
-- A refused request changes nothing (it does not eat the budget of the other keys).
-- Time is Redis' own clock (TIME), so every server process shares one timeline.
-- KEYS[i]  one limit's key (a string holding the TAT in ms)
-- ARGV: per key, in KEYS order: interval in ms (1000 / rate), burst (requests);
--       then optionally 'peek': only ask whether a request would pass, write nothing
--       (a budget spent only by failures is looked at first, spent after one)
-- Returns {0, 0} allowed | {i, retry_after_ms} refused by KEYS[i] (the largest wait)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local worst, wait = 0, 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now and allow_at - now > wait then
    worst, wait = i, allow_at - now
  end
  tats[i] = new_tat
end
if worst > 0 or ARGV[2 * #KEYS + 1] == 'peek' then return {worst, wait} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil(tats[i] - now) + 1)
end
return {0, 0}
