-- Admit waiting jobs in weighted round-robin order across tenants (runs/fairness.py).
-- The budget functions (budget_check.lua) are prepended to this text when it is loaded.
--
-- KEYS[1] lanes: sorted set of the tenants with waiting jobs (score 0: ordered by name)
-- KEYS[2] state: hash {lane: the lane being served, used: jobs it took in its turn,
--         paused: JSON {lane: until when it is held (a rate or a budget says wait)}}
-- KEYS[3] waiting: hash job id -> JSON {lane, usd, tokens, scopes}
-- KEYS[4] admitted: sorted set of admitted, not yet started job ids, scored by when
-- KEYS[5] inflight: hash lane -> jobs admitted and not yet ended
-- KEYS[6] running: hash job id -> lane (the jobs counted in `inflight`), and
--         "<job id>|0" -> 1 for a job that holds no budget reservation (fair_release.lua)
-- KEYS[7] leases: the job store's lease sorted set
-- KEYS[8] reservations: hash job id -> JSON {keys, usd, tokens} (budget_check.lua)
-- ARGV[1] now; ARGV[2] window (admitted, not started, at most); ARGV[3] seconds after
-- which an admitted job no longer counts in a full window; ARGV[4] the lease an admitted
-- job gets; ARGV[5] weights JSON {lane: n}; ARGV[6] default weight; ARGV[7] caps JSON
-- {lane: n}; ARGV[8] budgets JSON (budget_check.lua); ARGV[9] the prefix of the lanes'
-- lists; ARGV[10] how long a lane held by a budget waits before it is looked at again;
-- ARGV[11] rates JSON {lane: [starts per minute, estimated tokens per minute]} (0: no
-- limit); ARGV[12] the prefix of the lanes' rate buckets (hash r, t, ts); ARGV[13] a
-- job whose start step began (it leaves the window first), or ""; ARGV[14] "1" when
-- producers admit uncontended jobs at their push (fair_push.lua), else "".
-- Returns {admitted job ids, {job id, scope, reason}..., {lane, until, scope, job id}...,
-- the admitted jobs' waiting entries (JSON, in the order of their ids)}.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weights = cjson.decode(ARGV[5])
local default_weight = tonumber(ARGV[6])
local caps = cjson.decode(ARGV[7])
local budgets = cjson.decode(ARGV[8])
local prefix = ARGV[9]
local recheck = tonumber(ARGV[10])
local rates = cjson.decode(ARGV[11])
local rate_prefix = ARGV[12]
local admitted, refused, held, entries = {}, {}, {}, {}

if ARGV[13] ~= '' then redis.call('ZREM', KEYS[4], ARGV[13]) end
local lanes = redis.call('ZCARD', KEYS[1])
if lanes == 0 then return {admitted, refused, held, entries} end
local room = window - redis.call('ZCARD', KEYS[4])
if room <= 0 then -- admissions whose start never came stop filling the window
  if redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[3])) == 0 then
    return {admitted, refused, held, entries}
  end
  room = window - redis.call('ZCARD', KEYS[4])
  if room <= 0 then return {admitted, refused, held, entries} end
end

local function next_lane(after)
  local found = {}
  if after then found = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. after, '+', 'LIMIT', 0, 1) end
  if #found == 0 then found = redis.call('ZRANGEBYLEX', KEYS[1], '-', '+', 'LIMIT', 0, 1) end
  return found[1]
end

-- What this call learnt of each lane (read once, kept up to date as the call goes).
-- The lanes' pauses come with the round-robin's state (one HMGET a call, not an HGET a
-- lane), and are written back with it when this call paused a lane.
local paused_until, inflight, pauses_changed = {}, {}, false

local function blocked(lane)
  if (paused_until[lane] or 0) > now then return true end
  local cap = caps[lane]
  if cap then
    if inflight[lane] == nil then
      inflight[lane] = tonumber(redis.call('HGET', KEYS[5], lane) or '0')
    end
    if inflight[lane] >= cap then return true end
  end
  return false
end

local function pause(lane, until_at)
  paused_until[lane] = tonumber(until_at)
  pauses_changed = true
end

local function num(x) return string.format('%.17g', x) end

local function rate_wait(lane, tokens)
  -- A lane's own token bucket (starts and estimated tokens per minute, refilled
  -- continuously, a minute's worth at most): 0 when the job may start now (and takes
  -- its share), else the seconds until it could. A job of more tokens than a minute's
  -- worth is charged a full bucket, or it would wait forever.
  local rate = rates[lane]
  if not rate then return 0 end
  local rpm, tpm = tonumber(rate[1]) or 0, tonumber(rate[2]) or 0
  local key = rate_prefix .. lane
  local st = redis.call('HMGET', key, 'r', 't', 'ts')
  local r, t = tonumber(st[1] or rpm), tonumber(st[2] or tpm)
  local elapsed = math.max(0, now - tonumber(st[3] or now))
  if rpm > 0 then r = math.min(rpm, r + rpm / 60 * elapsed) end
  if tpm > 0 then t = math.min(tpm, t + tpm / 60 * elapsed) end
  local need = math.min(tokens, tpm)
  local wait = 0
  if rpm > 0 and r < 1 then wait = (1 - r) / (rpm / 60) end
  if tpm > 0 and t < need then wait = math.max(wait, (need - t) / (tpm / 60)) end
  if wait <= 0 then
    if rpm > 0 then r = r - 1 end
    if tpm > 0 then t = t - need end
  end
  redis.call('HSET', key, 'r', num(r), 't', num(t), 'ts', num(math.max(now, tonumber(st[3] or now))))
  redis.call('EXPIRE', key, 120)
  return wait
end

local state = redis.call('HMGET', KEYS[2], 'lane', 'used', 'paused')
local lane = state[1]
local used = tonumber(state[2] or '0')
if state[3] then paused_until = cjson.decode(state[3]) end
local was_lane, was_used = lane, used
-- The state's lane may have left the set since (its last job cancelled while it
-- waited: fair_release.lua). Not asked upfront: a job taken off its list says it is
-- there (a lane is listed whenever its list holds a job), an empty list is dropped as
-- any; only a blocked lane is asked, so that a lane gone is not counted as one passed.
local verified = false
if not lane then
  lane = next_lane(nil)
  used = 0
  verified = true
end
local idle = 0 -- lanes passed in a row without a job taken from them
while room > 0 and lane and idle < lanes do
  local move_on, gone = false, false
  if blocked(lane) then
    move_on = true
    if verified or redis.call('ZSCORE', KEYS[1], lane) then
      idle = idle + 1
    else
      gone = true -- the state's lane, no longer listed: on to the next listed lane
    end
  else
    -- The lane's oldest job, taken off its list; put back first if it must wait. A
    -- lane whose list ran out is seen empty here, the next time its turn comes.
    local list = prefix .. lane
    local job = redis.call('LPOP', list)
    if not job then
      if redis.call('ZREM', KEYS[1], lane) == 1 then lanes = lanes - 1 end
      move_on, gone = true, true
    else
      local raw = redis.call('HGET', KEYS[3], job)
      local info = raw and cjson.decode(raw) or {}
      local verdict, scope, reason, until_at = budget_verdict(info, budgets)
      local wait = 0
      if verdict == 'ok' and raw then wait = rate_wait(lane, tonumber(info.tokens or 0)) end
      if wait > 0 then -- the lane's rate: it is looked at again when it has room
        redis.call('LPUSH', list, job)
        pause(lane, num(now + wait))
        move_on = true
        idle = idle + 1
      elseif verdict == 'wait' then
        redis.call('LPUSH', list, job)
        pause(lane, math.min(until_at, now + recheck))
        held[#held + 1] = {lane, tostring(until_at), scope, job}
        move_on = true
        idle = idle + 1
      else
        redis.call('HDEL', KEYS[3], job)
        idle = 0
        if verdict == 'fail' then
          refused[#refused + 1] = {job, scope, reason}
        elseif raw then -- a job with no waiting entry was cancelled meanwhile: drop it
          local reserved = budget_reserve(job, info, budgets, KEYS[8])
          redis.call('ZADD', KEYS[4], now, job)
          redis.call('ZADD', KEYS[7], now + tonumber(ARGV[4]), job)
          redis.call('HINCRBY', KEYS[5], lane, 1)
          if inflight[lane] ~= nil then inflight[lane] = inflight[lane] + 1 end
          if reserved then
            redis.call('HSET', KEYS[6], job, lane)
          else -- the mark saves its release the reservation lookup (fair_release.lua)
            redis.call('HSET', KEYS[6], job, lane, job .. '|0', 1)
          end
          admitted[#admitted + 1] = job
          entries[#entries + 1] = raw
          room = room - 1
          used = used + 1
          if ARGV[14] ~= '' and caps[lane] and inflight[lane] >= caps[lane]
              and redis.call('LLEN', list) == 0 then
            -- Its last job took the lane to its cap: it is not looked at again (and
            -- so not found empty) until one of its jobs ends, and while it is listed
            -- every push waits (fair_push.lua). Dropped now, as an empty lane.
            redis.call('ZREM', KEYS[1], lane)
            lanes = lanes - 1
            move_on, gone = true, true
          end
        end
      end
    end
  end
  if move_on or used >= (weights[lane] or default_weight) then
    if lanes == 0 then
      lane = nil
    elseif lanes > 1 or gone then -- (the one lane left is this one: its turn again)
      lane = next_lane(lane)
    end
    used = 0
  end
  verified = true -- a listed lane from here on (next_lane, or one a job came out of)
end
if lane then
  local fields = {}
  if lane ~= was_lane or used ~= was_used then
    fields = {'lane', lane, 'used', used}
  end
  if pauses_changed then -- the pauses still running, the lapsed ones left out
    local kept = {}
    for name, until_at in pairs(paused_until) do
      if until_at > now then kept[name] = until_at end
    end
    fields[#fields + 1] = 'paused'
    fields[#fields + 1] = cjson.encode(kept)
  end
  if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
else
  redis.call('DEL', KEYS[2])
end
return {admitted, refused, held, entries}
