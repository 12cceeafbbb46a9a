-- Take a conversation's turn (runs/store.py, JobStore.take_conversation): its lock, in
-- the order the jobs on it were submitted.
--
-- KEYS[1] the conversation's turn lock
-- KEYS[2] its queue for the job's tenant: a sorted set of the jobs that will take turns
--         on it, scored by when each was submitted. store_create.lua adds a job that
--         names the conversation; a job not there joins here, at its own submission time
--         (a continuation, which learns its conversation at its start, or a record
--         written before the queue existed). Another tenant's job that names the
--         conversation competes for the lock but holds no place in this line: it fails
--         at the history, which is not its own, anyway.
-- ARGV[1] the job id   ARGV[2] the lock's life (ms)   ARGV[3] the job's submission time
-- ARGV[4] the queue's TTL (s), kept at least this long
--
-- Returns {'mine'} when the job holds the turn (it leaves the queue), {'held', holder,
-- next} when another job holds it (`next` is '1' when this job is first in line: the
-- caller asks the holder's end to start it, JobStore.wait_for_end), {'behind', job} when
-- a job submitted before it has yet to take its turn. The caller looks at the job named:
-- one that has ended or is gone is passed over (JobStore.take_conversation) and the call
-- made again.
local job = ARGV[1]
local holder = redis.call('GET', KEYS[1])
if holder == job then
  redis.call('ZREM', KEYS[2], job)
  return {'mine'}
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], job) == 1
    and redis.call('TTL', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if holder then return {'held', holder, head == job and '1' or '0'} end
if head ~= job then return {'behind', head} end
redis.call('SET', KEYS[1], job, 'PX', ARGV[2])
redis.call('ZREM', KEYS[2], job)
return {'mine'}
