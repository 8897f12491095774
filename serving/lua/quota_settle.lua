-- Settle a token reservation: ARGV[1] = reserved - used tokens.
-- Positive: give that many back to each counter, never below zero. Negative: the answer used more
-- than it reserved, count the extra. A counter that no longer exists (its window ended) is left alone.
local delta = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current then
    current = tonumber(current)
    if delta > 0 then
      redis.call('DECRBY', key, math.min(current, delta))
    elseif delta < 0 then
      redis.call('INCRBY', key, -delta)
    end
  end
end
return 1
