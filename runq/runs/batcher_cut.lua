-- Cut a batch (runs/batcher/queue.py): move the given lines from their group's queue
-- into a new batch, atomically, so a line belongs to exactly one batch.
-- KEYS[1] the group's queue (zset custom_id -> enqueued at)
-- KEYS[2] the group's queued lines (hash custom_id -> JSONL line)
-- KEYS[3] the new batch's record (hash)   KEYS[4] the new batch's lines (hash)
-- KEYS[5] the set of open batches
-- ARGV[1] the batch id  ARGV[2] the group id  ARGV[3] now  ARGV[4..] the custom ids
-- Returns how many lines moved (0: nothing is written).
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local moved = 0
local bytes = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local line = redis.call('HGET', KEYS[2], id)
  if line and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HSET', KEYS[4], id, line)
    moved = moved + 1
    bytes = bytes + string.len(line) + 1
  end
end
if moved > 0 then
  redis.call('HSET', KEYS[3], 'status', 'cut', 'group', ARGV[2], 'cut_at', ARGV[3],
             'lines', moved, 'bytes', bytes)
  redis.call('SADD', KEYS[5], ARGV[1])
end
return moved
