-- A new job enters admission (runs/fairness.py). Uncontended, it is admitted here and
-- then: nothing waits in any lane (no turn to keep), its lane is under its cap and the
-- window has room (the caller, `Admission.enter`, asks only for a job the workers'
-- policy holds no budget or rate over, and passes their window and its lane's cap). It
-- is then counted in flight and in the window exactly as fair_admit.lua counts an
-- admitted job, and the producer sends its start (return -1). Its lease stays the one
-- its record was created with (a short one, as a job sent without admission has): should
-- the producer die before the send, the sweeper starts it, as it starts an admitted job
-- whose worker died before its send.
--
-- Otherwise the job waits: its entry, its lane's list, the lane, a long lease (the
-- sweeper pushes a waiting job's lease forward, never re-drives it) and its
-- `job.waiting` event, in the same call.
-- KEYS[1] waiting hash; KEYS[2] the lane's list; KEYS[3] lanes sorted set; KEYS[4] leases;
-- KEYS[5] admitted sorted set; KEYS[6] inflight hash; KEYS[7] running hash
-- (fair_admit.lua); KEYS[8] the job's event stream.
-- ARGV[1] job id; ARGV[2] its entry (JSON); ARGV[3] the lane; ARGV[4] its waiting
-- lease's end; ARGV[5] now, to try admitting it at once, or "" (it waits); ARGV[6] the
-- window; ARGV[7] the lane's cap, or ""; ARGV[8] its `job.waiting` event (JSON), or "";
-- ARGV[9] the stream's MAXLEN (events.py).
-- Returns -1 when the job was admitted here (the caller sends its start), 0 when it is in
-- admission already (a duplicate push), else its place in its lane's list.
-- A lane is in the lanes set whenever its list holds a job (a lane leaves the set only
-- once its list is empty: fair_admit.lua, fair_release.lua), so only the job that
-- starts a list adds its lane, and an empty set means no job waits.
local job, lane = ARGV[1], ARGV[3]
if ARGV[5] ~= '' and redis.call('ZCARD', KEYS[3]) == 0
    and redis.call('ZCARD', KEYS[5]) < tonumber(ARGV[6])
    and (ARGV[7] == '' or tonumber(redis.call('HGET', KEYS[6], lane) or '0') < tonumber(ARGV[7])) then
  -- Its lane, and the mark that it holds no budget reservation (fair_admit.lua); both
  -- there already: it is in flight (a duplicate push).
  local added = redis.call('HSET', KEYS[7], job, lane, job .. '|0', 1)
  if added < 2 then
    if added == 1 then redis.call('HDEL', KEYS[7], job .. '|0') end
    return 0
  end
  redis.call('ZADD', KEYS[5], ARGV[5], job)
  redis.call('HINCRBY', KEYS[6], lane, 1)
  return -1
end
if redis.call('HSETNX', KEYS[1], job, ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[4], 'XX', ARGV[4], job)
local place = redis.call('RPUSH', KEYS[2], job)
if place == 1 then redis.call('ZADD', KEYS[3], 0, lane) end
if ARGV[8] ~= '' then
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[9], '*', 'data', ARGV[8])
end
return place
