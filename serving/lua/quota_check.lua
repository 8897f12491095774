-- Check and count one request against every applicable limit, all-or-nothing.
-- KEYS[i]: one counter per (limit, kind), its window's start in the name.
-- ARGV: for each key, three values: maximum, cost (1 for requests, reserved tokens), time to live (s).
-- Returns {allowed (1/0), {used after this call per key}, {1 where that key refused, else 0}}.
-- Nothing is written unless every counter has room, so a refused request is counted nowhere.
local used = {}
local refused = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 3
  local maximum = tonumber(ARGV[base + 1])
  local cost = tonumber(ARGV[base + 2])
  local current = tonumber(redis.call('GET', key) or '0')
  used[i] = current
  if current + cost > maximum then
    refused[i] = 1
    allowed = 0
  else
    refused[i] = 0
  end
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    local base = (i - 1) * 3
    local cost = tonumber(ARGV[base + 2])
    used[i] = redis.call('INCRBY', key, cost)
    redis.call('EXPIRE', key, tonumber(ARGV[base + 3]))
  end
end
return {allowed, used, refused}
