-- Move a batch's record from one status to the next (runs/batcher/queue.py), only if it
-- is still in the status its mover read: two movers never both act on one status.
-- KEYS[1] the batch's record (hash)
-- ARGV[1] the status it must be in  ARGV[2] the new status  ARGV[3..] field, value pairs
-- Returns 1 when moved, 0 when the record was in another status.
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
