-- A new job waits for admission (runs/fairness.py): its entry, its lane's list, the lane.
-- KEYS[1] waiting hash; KEYS[2] the lane's list; KEYS[3] lanes sorted set.
-- ARGV[1] job id; ARGV[2] its entry (JSON); ARGV[3] the lane.
-- Returns 0 when the job waits already (a duplicate push), else its place in the lane.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], 0, ARGV[3])
return redis.call('RPUSH', KEYS[2], ARGV[1])
