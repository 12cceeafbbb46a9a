-- Ask a job to stop (runs/cancellation.py, request): raise its cancel flag unless the
-- job has ended, and say which, in one atomic call.
--
-- KEYS[1]  the job record   KEYS[2]  its cancel flag
-- ARGV[1]  the flag's TTL in seconds   ARGV[2..] the statuses that end a job
--
-- Returns {"missing", ""} when there is no record, {"ended", status} when the job had
-- ended (no flag is raised), else {"requested", the status it is in}.
local data = redis.call('GET', KEYS[1])
if not data then return {'missing', ''} end
local status = cjson.decode(data)['status']
for i = 2, #ARGV do
  if status == ARGV[i] then return {'ended', status} end
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return {'requested', status}
