-- Keep holding a lock during a long step (runs/store.py, JobStore.extend_lock).
-- KEYS[1] the lock; ARGV[1] its owner; ARGV[2] the new lock time in milliseconds.
-- Returns 1 when extended, 0 when the lock is no longer this owner's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
