-- Take in one verified webhook delivery (runs/webhooks.py): refuse a replay, find the job,
-- and wake its poll when the wait the delivery ends is still pending.
-- KEYS[1] the delivery's id mark; KEYS[2] the response -> job index; KEYS[3] the wake
-- queue; KEYS[4] the delayed steps (runs/delays.py).
-- ARGV[1] how long a delivery id is remembered (s); ARGV[2] how long an early mark lives
-- (s); ARGV[3] '1' to wake a job's poll here (a response's delivery), '0' not (a batch's).
--
-- The step that created the response indexed it as `token|job_id`: the token of the
-- wait it committed. While that wait's safety look is still in the delayed steps, the job
-- waits for this very response: the look is dropped and the poll pushed to the wake
-- queue (WakeQueue.wake_poll's two writes). Anything else (no look: it is being run, the
-- poll came early, the job moved on; or an index of the older `job_id` form) returns
-- the job for the caller to decide from the record.
--
-- Returns {'duplicate'}, {'woken', job_id}, {'job', job_id}, or {'early'} when no run of
-- runq's is known yet under that id. The early mark is the index key itself, holding
-- `early`: the step writes its index with `SET ... GET` (WebhookIndex.expect), which
-- tells it in the same command that the delivery came first, so it polls at once.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {'duplicate'}
end
local entry = redis.call('GET', KEYS[2])
if not entry then
  redis.call('SET', KEYS[2], 'early', 'EX', ARGV[2])
  return {'early'}
end
if entry == 'early' then
  return {'early'} -- another delivery for it (a new webhook id), still before its index
end
if ARGV[3] ~= '1' then
  return {'job', entry}
end
local token, job = string.match(entry, '^(%d+)|(.+)$')
if not job then
  return {'job', entry}
end
if redis.call('ZREM', KEYS[4], job .. '|look|' .. token) == 1 then
  redis.call('LPUSH', KEYS[3], job .. '|poll|' .. token)
  return {'woken', job}
end
return {'job', job}
