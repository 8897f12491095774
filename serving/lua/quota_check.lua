-- Check and count one request against every applicable limit, all-or-nothing.
-- ARGV[1]: how many of the first KEYS are the policy's (0, or 2: the policy hash and its epoch key).
-- ARGV[2]: how many KEYS after those confirm the caller's access (0, or 3: its address's brake
-- counter, the brake's window end, its team's access stamp); ARGV[3] the brake's threshold, ARGV[4]
-- the stamp the caller was authenticated under (accounts.authentication.PendingAccess).
-- ARGV[5]: n, how many policy fields this call loads (0 unless the last reply said "policies missing").
-- ARGV[6]: the epoch the caller read before loading them; ARGV[7]: the policy hash's time to live (s).
-- ARGV[8 .. 7 + 2n]: the loaded fields, name and value ('' = no limit).
-- The remaining KEYS: one counter per (limit, kind), its window's start in the name. For each, three
-- ARGV: its maximum (a number, or the name of a policy field that holds it), cost (1 for requests,
-- the reserved tokens), time to live (s).
-- Returns {allowed (1/0), {used per counter}, {1 where that counter refused, else 0}, {maximum per
-- counter, -1 where its policy field says no limit}}; or {-1, epoch} when a policy field it needs is
-- not in Redis (a cold start, a flush, or a policy changed): the caller loads the policy from the
-- database and calls again with it and that epoch. A load is written only if the epoch is unchanged,
-- so a policy read before a change cannot overwrite the change (every change bumps the epoch).
-- Or {-2, brake counter, brake end, stamp} when the address is braked or the stamp has changed: the
-- caller's access is not what it was authenticated under, and nothing is checked or counted.
-- Nothing is counted unless every counter has room, so a refused request is counted nowhere.
local npolicy = tonumber(ARGV[1])
local naccess = tonumber(ARGV[2])
if naccess > 0 then
  local brake = redis.call('GET', KEYS[npolicy + 1])
  local stamp = redis.call('GET', KEYS[npolicy + 3])
  if (brake and tonumber(brake) >= tonumber(ARGV[3])) or stamp ~= ARGV[4] then
    return {-2, brake, redis.call('GET', KEYS[npolicy + 2]), stamp}
  end
end
local nload = tonumber(ARGV[5])
local policy, epoch_key = KEYS[1], KEYS[2]
if nload > 0 then
  local epoch = redis.call('GET', epoch_key) or '0'
  if epoch ~= ARGV[6] then
    return {-1, epoch}
  end
  redis.call('HSET', policy, unpack(ARGV, 8, 7 + 2 * nload))
  -- Set once, not renewed: a bound on how long a copy can outlive a change whose invalidation failed.
  if redis.call('TTL', policy) < 0 then
    redis.call('EXPIRE', policy, tonumber(ARGV[7]))
  end
end
local first = npolicy + naccess
local base = 7 + 2 * nload
local maxima, costs, used, refused = {}, {}, {}, {}
local allowed = 1
for i = first + 1, #KEYS do
  local at = base + (i - first - 1) * 3
  local spec = ARGV[at + 1]
  local maximum = tonumber(spec)
  if maximum == nil then
    local value = redis.call('HGET', policy, spec)
    if not value then
      return {-1, redis.call('GET', epoch_key) or '0'}
    end
    maximum = tonumber(value) or -1
  end
  local n = i - first
  maxima[n] = maximum
  costs[n] = tonumber(ARGV[at + 2])
  used[n] = 0
  refused[n] = 0
  if maximum >= 0 then
    local current = tonumber(redis.call('GET', KEYS[i]) or '0')
    used[n] = current
    if current + costs[n] > maximum then
      refused[n] = 1
      allowed = 0
    end
  end
end
if allowed == 1 then
  for i = first + 1, #KEYS do
    local n = i - first
    if maxima[n] >= 0 then
      used[n] = redis.call('INCRBY', KEYS[i], costs[n])
      redis.call('EXPIRE', KEYS[i], tonumber(ARGV[base + (n - 1) * 3 + 3]))
    end
  end
end
return {allowed, used, refused, maxima}
