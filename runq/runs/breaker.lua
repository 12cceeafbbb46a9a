-- The circuit breaker of one backend link (runs/breaker.py); every transition is one call.
-- KEYS[1] breaker hash: state, failures, opened (time), probe (time the probe went)
-- ARGV: op, now ("" = Redis TIME), threshold, open_seconds, probe_timeout, ttl_ms
local key = KEYS[1]
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end
local threshold = tonumber(ARGV[3])
local open_seconds = tonumber(ARGV[4])
local probe_timeout = tonumber(ARGV[5])
local ttl_ms = tonumber(ARGV[6])

local h = redis.call('HMGET', key, 'state', 'failures', 'opened', 'probe')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '0')
local opened = tonumber(h[3] or '0')
local probe = tonumber(h[4] or '0')

local function num(x) return string.format('%.17g', x) end
local function save(fields)
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIRE', key, ttl_ms)
end
local function open_now()
  save({'state', 'open', 'failures', failures, 'opened', num(now)})
  return 'open'
end

if op == 'allow' then
  -- {allowed, state, seconds until this state can change (as a string), 1 when the
  -- breaker is closed with no failures counted (then the caller's success is a no-op)}
  if state == 'closed' then
    return {1, state, '0', h[1] and 0 or 1}
  end
  if state == 'open' and now >= opened + open_seconds then
    save({'state', 'half_open', 'probe', num(now)})
    return {1, 'half_open', '0'}
  end
  if state == 'half_open' and now >= probe + probe_timeout then
    save({'probe', num(now)})  -- the last probe never reported: send another
    return {1, state, '0'}
  end
  if state == 'open' then
    return {0, state, num(opened + open_seconds - now)}
  end
  return {0, state, num(probe + probe_timeout - now)}
elseif op == 'release' then
  -- The probe never called the link (rate limited, say): the next caller may probe.
  if state == 'half_open' then
    save({'probe', '0'})
  end
  return state
elseif op == 'success' then
  if state == 'open' then
    return state
  end
  if h[1] then
    redis.call('DEL', key)  -- closed with no failures is the default: nothing to keep
  end
  return 'closed'
elseif op == 'failure' then
  if state == 'half_open' then
    return open_now()
  end
  if state == 'open' then
    return state
  end
  failures = failures + 1
  if failures >= threshold then
    return open_now()
  end
  save({'state', 'closed', 'failures', failures})
  return 'closed'
elseif op == 'state' then
  if state == 'open' and now >= opened + open_seconds then
    return 'half_open'
  end
  return state
end
return redis.error_reply('runq breaker: unknown op ' .. tostring(op))
