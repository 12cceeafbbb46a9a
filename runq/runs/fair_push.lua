-- A new job waits for admission (runs/fairness.py): its entry, its lane's list, the lane,
-- and a long lease (the sweeper pushes a waiting job's lease forward, never re-drives it).
-- KEYS[1] waiting hash; KEYS[2] the lane's list; KEYS[3] lanes sorted set; KEYS[4] leases.
-- ARGV[1] job id; ARGV[2] its entry (JSON); ARGV[3] the lane; ARGV[4] its lease's end.
-- Returns 0 when the job waits already (a duplicate push), else its place in the lane.
-- A lane is in the lanes set whenever its list holds a job (a lane leaves the set only
-- once its list is empty: fair_admit.lua, fair_release.lua), so only the job that
-- starts a list adds its lane.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[4], 'XX', ARGV[4], ARGV[1])
local place = redis.call('RPUSH', KEYS[2], ARGV[1])
if place == 1 then redis.call('ZADD', KEYS[3], 0, ARGV[3]) end
return place
