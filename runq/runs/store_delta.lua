-- Forward one text delta of a streamed run (runs/store.py, JobStore.forward_delta): the
-- delta goes to the job's event stream and its sequence number to the run's position,
-- in one atomic call, so a resumed stream neither repeats nor skips a delta.
--
-- KEYS[1]  the job's event stream   KEYS[2]  the job's stream positions (hash run -> seq)
-- ARGV[1]  the stream's MAXLEN   ARGV[2]  the event (JSON)   ARGV[3]  the run (field)
-- ARGV[4]  its sequence number   ARGV[5]  the positions' TTL in seconds
--
-- The event stream's TTL is left as it is: it was set when the job was created (for its
-- deadline and more) and is set again by the commit that ends the job (store_commit.lua).
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
