-- A job leaves admission (runs/fairness.py): it ended, or was cancelled while it waited.
-- KEYS[1] waiting hash; KEYS[2] admitted sorted set; KEYS[3] inflight hash (lane -> n);
-- KEYS[4] running hash (job id -> lane); KEYS[5] lanes sorted set. ARGV[1] job id;
-- ARGV[2] the lanes' list prefix.
-- Returns 1 when the job held a place (waiting or in flight), else 0. Idempotent.
-- A job is pushed once (by its producer) and admission moves it from waiting to
-- running in one call, so a job found running is not looked for among the waiting.
local job = ARGV[1]
redis.call('ZREM', KEYS[2], job)
local lane = redis.call('HGET', KEYS[4], job)
if lane then
  redis.call('HDEL', KEYS[4], job)
  if redis.call('HINCRBY', KEYS[3], lane, -1) <= 0 then redis.call('HDEL', KEYS[3], lane) end
  return 1
end
local raw = redis.call('HGET', KEYS[1], job)
if not raw then return 0 end
local info = cjson.decode(raw)
redis.call('LREM', ARGV[2] .. info.lane, 1, job)
if redis.call('LLEN', ARGV[2] .. info.lane) == 0 then redis.call('ZREM', KEYS[5], info.lane) end
redis.call('HDEL', KEYS[1], job)
return 1
