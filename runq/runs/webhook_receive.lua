-- Take in one verified webhook delivery (runs/webhooks.py): refuse a replay, find the job.
-- KEYS[1] the delivery's id mark; KEYS[2] the response -> job index; KEYS[3] the early mark.
-- ARGV[1] how long a delivery id is remembered (s); ARGV[2] how long an early mark lives (s).
-- Returns {'duplicate'}, {'job', job_id}, or {'early'} when no run of runq's is known yet
-- under that response id: the mark lets the step that writes the index poll at once.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {'duplicate'}
end
local job = redis.call('GET', KEYS[2])
if job then
  return {'job', job}
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
return {'early'}
