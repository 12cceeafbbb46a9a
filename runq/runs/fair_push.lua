-- A new job enters admission (runs/fairness.py). Uncontended, it is admitted here and
-- then: nothing waits in any lane (no turn to keep), the workers' policy is known
-- (published with their heartbeats: the window, the caps, the lanes with a rate, the
-- scopes with a budget), the job falls under no budget and its lane has no rate, its
-- lane is under its cap and the window has room. It is then counted in flight and in
-- the window exactly as fair_admit.lua counts an admitted job, and the producer sends
-- its start (return -1). Its lease stays the one its record was created with (a short
-- one, as a job sent without admission has): should the producer die before the send,
-- the sweeper starts it, as it starts an admitted job whose worker died before its send.
--
-- Otherwise the job waits: its entry, its lane's list, the lane, and a long lease (the
-- sweeper pushes a waiting job's lease forward, never re-drives it).
-- KEYS[1] waiting hash; KEYS[2] the lane's list; KEYS[3] lanes sorted set; KEYS[4] leases;
-- KEYS[5] the workers' policy (JSON {window, caps {lane: n}, rated {lane: 1},
-- budgeted {scope: 1}}; absent: none published lately); KEYS[6] admitted sorted set;
-- KEYS[7] inflight hash; KEYS[8] running hash (fair_admit.lua).
-- ARGV[1] job id; ARGV[2] its entry (JSON); ARGV[3] the lane; ARGV[4] its waiting
-- lease's end; ARGV[5] now, to try admitting it at once, or "" (it waits).
-- Returns -1 when the job was admitted here (the caller sends its start), 0 when it is in
-- admission already (a duplicate push), else its place in its lane's list.
-- A lane is in the lanes set whenever its list holds a job (a lane leaves the set only
-- once its list is empty: fair_admit.lua, fair_release.lua), so only the job that
-- starts a list adds its lane, and an empty set means no job waits.
local job, lane = ARGV[1], ARGV[3]
if ARGV[5] ~= '' and redis.call('ZCARD', KEYS[3]) == 0 then
  local raw = redis.call('GET', KEYS[5])
  local policy = raw and cjson.decode(raw) or nil
  local open = policy ~= nil and not policy.rated[lane]
  if open then
    for _, scope in ipairs(cjson.decode(ARGV[2]).scopes or {}) do
      if policy.budgeted[scope] then open = false end
    end
  end
  if open and redis.call('ZCARD', KEYS[6]) < tonumber(policy.window) then
    local cap = policy.caps[lane]
    if not cap or tonumber(redis.call('HGET', KEYS[7], lane) or '0') < tonumber(cap) then
      -- Its lane, and the mark that it holds no budget reservation (fair_admit.lua);
      -- both there already: it is in flight (a duplicate push).
      local added = redis.call('HSET', KEYS[8], job, lane, job .. '|0', 1)
      if added < 2 then
        if added == 1 then redis.call('HDEL', KEYS[8], job .. '|0') end
        return 0
      end
      redis.call('ZADD', KEYS[6], ARGV[5], job)
      redis.call('HINCRBY', KEYS[7], lane, 1)
      return -1
    end
  end
end
if redis.call('HSETNX', KEYS[1], job, ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[4], 'XX', ARGV[4], job)
local place = redis.call('RPUSH', KEYS[2], job)
if place == 1 then redis.call('ZADD', KEYS[3], 0, lane) end
return place
