-- runq global rate limiter: one token bucket per backend link, two dimensions
-- (requests and model tokens), refilled continuously. Runs atomically inside Redis,
-- so every worker on every machine sees one bucket. See runs/ratelimit.py.
--
-- KEYS[1]  the bucket hash: r, t (levels), ts (last update, seconds),
--          lr, lt (per-minute limits reported by the server, optional)
-- ARGV[1]  op: acquire | correct | calibrate | peek
-- ARGV[2]  now in seconds, or "" to use the Redis server's clock (TIME)
-- ARGV[3]  requests per minute (0 = this dimension is not limited)
-- ARGV[4]  tokens per minute (0 = this dimension is not limited)
-- ARGV[5]  request burst (bucket capacity)
-- ARGV[6]  token burst (bucket capacity)
-- ARGV[7..] op arguments (see each op)
--
-- Numbers travel as strings formatted with %.17g: Redis would truncate a Lua number
-- reply to an integer, and tostring() keeps only 14 digits.

local key = KEYS[1]
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[2])
end

-- A wait this short counts as none: it absorbs the float error of a caller that comes
-- back after exactly `wait` (times near 1.8e9 s carry about 1e-7 s of precision), and
-- Redis TIME itself has microsecond resolution.
local TICK = 1e-6
local SLACK = 60   -- seconds a full, idle bucket lingers before it expires

local function num(x)
  return string.format('%.17g', x)
end

local state = redis.call('HMGET', key, 'r', 't', 'ts', 'lr', 'lt')
local stored = state[3] ~= false

-- One dimension: its rate (per second), capacity and current level. A per-minute
-- limit reported by the server lowers both when it is below our configuration.
local function shape(d, server_limit)
  local limit = d.per_minute
  if server_limit and server_limit < limit then
    limit = server_limit
  end
  d.rate = limit / 60
  d.cap = math.min(d.burst, limit)
end

local function dimension(per_minute, burst, level, server_limit)
  if per_minute <= 0 then
    return nil
  end
  local d = { per_minute = per_minute, burst = burst }
  shape(d, server_limit)
  if level == nil then
    d.level = d.cap
  else
    d.level = math.min(level, d.cap)
  end
  return d
end

local function opt(x)
  if x == false or x == nil or x == '' then
    return nil
  end
  return tonumber(x)
end

local req = dimension(tonumber(ARGV[3]), tonumber(ARGV[5]), opt(state[1]), opt(state[4]))
local tok = dimension(tonumber(ARGV[4]), tonumber(ARGV[6]), opt(state[2]), opt(state[5]))

-- Continuous refill since the last update. Time never runs backwards for a bucket:
-- a caller whose clock is behind the last update refills nothing and does not pull
-- `ts` back (which would let the next caller count the same seconds twice).
if stored then
  now = math.max(now, tonumber(state[3]))
  local elapsed = now - tonumber(state[3])
  for _, d in ipairs({ req or false, tok or false }) do
    if d then
      d.level = math.min(d.cap, d.level + d.rate * elapsed)
    end
  end
end

local function wait_for(d, need)
  if d == nil or d.level >= need then
    return 0
  end
  local wait = (need - d.level) / d.rate
  if wait <= TICK then
    return 0
  end
  return wait
end

local function save()
  local fields = { 'ts', num(now) }
  local ttl = SLACK
  for name, d in pairs({ r = req, t = tok }) do
    if d then
      table.insert(fields, name)
      table.insert(fields, num(d.level))
      -- Idle long enough to be full again: the key is no longer needed.
      ttl = math.max(ttl, (d.cap - d.level) / d.rate + SLACK)
    end
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIRE', key, math.ceil(ttl * 1000))
end

local function levels()
  local out = {}
  for _, d in ipairs({ req or false, tok or false }) do
    if d then
      table.insert(out, num(d.level))
      table.insert(out, num(d.cap))
    else
      table.insert(out, '')
      table.insert(out, '')
    end
  end
  return out
end

if op == 'acquire' then
  -- ARGV[7]: tokens wanted. More than the bucket can ever hold is charged as a full
  -- bucket (otherwise it would wait forever); the reply says what was charged.
  local cost = tonumber(ARGV[7])
  if tok and cost > tok.cap then
    cost = tok.cap
  end
  local wait = math.max(wait_for(req, 1), wait_for(tok, cost))
  if wait > 0 then
    save()
    return { 0, num(wait), num(cost) }
  end
  if req then req.level = req.level - 1 end
  if tok then tok.level = tok.level - cost end
  save()
  return { 1, '0', num(cost) }
elseif op == 'correct' then
  -- ARGV[7]: tokens to charge (positive) or refund (negative). A charge may leave the
  -- bucket in debt (below zero); later callers then wait for the debt to be repaid.
  if tok then
    tok.level = math.min(tok.cap, tok.level - tonumber(ARGV[7]))
  end
  save()
  return levels()
elseif op == 'calibrate' then
  -- ARGV[7..9]: limit, remaining, reset seconds for requests; ARGV[10..12] for tokens.
  -- Each may be "" when the server did not say.
  local function apply(d, name, limit, remaining, reset)
    if d == nil then
      return
    end
    if limit then
      redis.call('HSET', key, name, num(limit))
      shape(d, limit)
      d.level = math.min(d.level, d.cap)
    end
    if remaining then
      d.level = math.min(d.level, remaining)
    end
    if reset then
      -- Refilling at our rate, the bucket must not be full before the server's reset.
      d.level = math.min(d.level, d.cap - d.rate * reset)
    end
  end
  apply(req, 'lr', opt(ARGV[7]), opt(ARGV[8]), opt(ARGV[9]))
  apply(tok, 'lt', opt(ARGV[10]), opt(ARGV[11]), opt(ARGV[12]))
  save()
  return levels()
elseif op == 'peek' then
  if stored then
    save()
  end
  return levels()
end
return redis.error_reply('runq ratelimit: unknown op ' .. tostring(op))
