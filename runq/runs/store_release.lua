-- Give a lock back, only if it is still the owner's (runs/store.py: a job's lock, a
-- conversation's turn). KEYS[1] the lock; ARGV[1] its owner. Returns 1 when deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
