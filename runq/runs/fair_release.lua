-- A job leaves admission (runs/fairness.py): it ended, or was cancelled while it waited.
-- KEYS[1] waiting hash; KEYS[2] inflight hash (lane -> n); KEYS[3] running hash (job
-- id -> lane; "<job id>|0" -> 1: it holds no reservation); KEYS[4] lanes sorted set;
-- KEYS[5] reservations hash (budget_check.lua).
-- ARGV[1] job id; ARGV[2] the lanes' list prefix; ARGV[3] its cost in USD and ARGV[4]
-- its tokens, to settle its budget reservation with (both "": not settled, the job's
-- usage is unknown).
-- Returns 1 when the job held a place (waiting or in flight), else 0. Idempotent.
-- A job is pushed once (by its producer) and admission moves it from waiting to
-- running in one call, so a job found running is not looked for among the waiting.
-- Its place in the window (the admitted set) is not looked for either: it left the
-- window when its start step began (fair_admit.lua's ARGV[13]), and every admitted job
-- gets a start (its own message, or the sweeper's once its lease runs out); one whose
-- start never came stops filling the window after a while (ADMITTED_STALE).
--
-- The settle is budget_check.lua's `budget_settle` (prepended to this text), skipped
-- when admission marked the job as holding no reservation (its "<job id>|0" field, read
-- in the same HMGET as its lane): most jobs fall under no budget, and their end then
-- costs no reservation lookup. A job admitted without the mark (it reserved, or an older
-- worker admitted it) is looked up. The running entry keeps its form, the bare lane, so
-- an older worker's release still finds the lane (it leaves the mark behind). In the
-- same call as the release, the settle can no longer be parted from it by a crash.
local job = ARGV[1]
local held = redis.call('HMGET', KEYS[3], job, job .. '|0')
local lane, unreserved = held[1], held[2]
if lane then
  redis.call('HDEL', KEYS[3], job, job .. '|0')
  if redis.call('HINCRBY', KEYS[2], lane, -1) <= 0 then redis.call('HDEL', KEYS[2], lane) end
  if not unreserved and ARGV[3] ~= '' then budget_settle(job, KEYS[5], ARGV[3], ARGV[4]) end
  return 1
end
local raw = redis.call('HGET', KEYS[1], job)
if not raw then return 0 end
local info = cjson.decode(raw)
redis.call('LREM', ARGV[2] .. info.lane, 1, job)
if redis.call('LLEN', ARGV[2] .. info.lane) == 0 then redis.call('ZREM', KEYS[4], info.lane) end
redis.call('HDEL', KEYS[1], job)
return 1
