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
-- ahead} when another job holds it, {'behind', head, ahead} when a job submitted before
-- it (the head of the line) has yet to take its turn. `ahead` is the job just before
-- this one in line ('' when this one is first): the caller asks the end of the job
-- before it (the holder when first) to start it (JobStore.wait_for_end). The caller
-- looks at the job named second: one that has ended or is gone is passed over
-- (JobStore.take_conversation) and the call made again.
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
local rank = redis.call('ZRANK', KEYS[2], job)
local ahead = ''
if rank > 0 then ahead = redis.call('ZRANGE', KEYS[2], rank - 1, rank - 1)[1] end
if holder then return {'held', holder, ahead} end
if rank > 0 then return {'behind', redis.call('ZRANGE', KEYS[2], 0, 0)[1], ahead} end
redis.call('SET', KEYS[1], job, 'PX', ARGV[2])
redis.call('ZREM', KEYS[2], job)
return {'mine'}
