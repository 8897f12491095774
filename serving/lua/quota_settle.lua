-- After an answer, in one atomic step: settle its token reservation and (optionally) meter the call.
-- ARGV[1] = reserved - used tokens; ARGV[2] = n, how many KEYS are token counters (KEYS[1 .. n]).
-- Positive: give that many back to each counter, never below zero. Negative: the answer used more
-- than it reserved, count the extra. A counter that no longer exists (its window ended) is left alone.
-- Metering (when KEYS[n + 1] is given): KEYS[n + 1] is the minute's metering hash, KEYS[n + 2] the
-- index of minutes; ARGV[3] the minute, ARGV[4 ..] field and increment pairs (serving.metering).
local delta = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local current = redis.call('GET', KEYS[i])
  if current then
    current = tonumber(current)
    if delta > 0 then
      redis.call('DECRBY', KEYS[i], math.min(current, delta))
    elseif delta < 0 then
      redis.call('INCRBY', KEYS[i], -delta)
    end
  end
end
local meter = KEYS[n + 1]
if meter then
  for at = 4, #ARGV, 2 do
    redis.call('HINCRBY', meter, ARGV[at], ARGV[at + 1])
  end
  redis.call('ZADD', KEYS[n + 2], ARGV[3], ARGV[3])
end
return 1
