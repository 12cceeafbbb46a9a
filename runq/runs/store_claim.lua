-- Claim a job for one step (runs/store.py, JobStore.claim): take its short lock, or
-- learn how long another task holds it; read the record and the cancel flag.
--
-- KEYS[1]  the job record          KEYS[2]  the job's lock       KEYS[3]  its cancel flag
-- ARGV[1]  the claimer's owner id  ARGV[2]  lock time in milliseconds
--
-- Returns {0, ms the holder still has} when busy, {-1, 0} when there is no record,
-- else {1, 0, record, cancel flag set (0/1)}.
--
-- The lock is taken with SET NX first: a free job (the usual case) costs one command
-- for it, not a GET and a SET; only a lock already there is read, to tell the
-- claimer's own lock (taken again, with a fresh time) from another task's.
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[1] then
    return {0, redis.call('PTTL', KEYS[2])}
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
-- The record and the cancel flag in one MGET.
local found = redis.call('MGET', KEYS[1], KEYS[3])
local data = found[1]
if not data then
  redis.call('DEL', KEYS[2])
  return {-1, 0}
end
return {1, 0, data, found[2] and 1 or 0}
