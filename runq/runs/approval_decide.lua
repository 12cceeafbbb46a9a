-- Decide one tool call that waits for a person (runs/approvals.py, decide): once, and
-- only while the job has not ended, in one atomic call.
--
-- KEYS[1]  the job's approvals (hash: call id -> entry JSON)   KEYS[2]  the job record
-- ARGV[1]  the call id   ARGV[2]  approved | denied   ARGV[3]  the reason
-- ARGV[4]  now (epoch seconds)   ARGV[5]  who decided: person | timeout
-- ARGV[6..] the statuses that end a job
--
-- Returns {"missing_job", ""}, {"missing", ""} (no such call waits), {"ended", status}
-- (the job ended: nothing is decided), {"decided", entry} (decided before: unchanged),
-- or {"ok", entry} with the decision written.
local job = redis.call('GET', KEYS[2])
if not job then return {'missing_job', ''} end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing', ''} end
local entry = cjson.decode(raw)
if entry['status'] ~= 'pending' then return {'decided', raw} end
local status = cjson.decode(job)['status']
for i = 6, #ARGV do
  if status == ARGV[i] then return {'ended', status} end
end
entry['status'] = ARGV[2]
entry['reason'] = ARGV[3]
entry['decided_at'] = tonumber(ARGV[4])
entry['decided_by'] = ARGV[5]
raw = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return {'ok', raw}
