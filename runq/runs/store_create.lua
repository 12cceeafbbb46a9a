-- Create a job (runs/store.py, JobStore.create): the record, its first events, its
-- lease, the idempotency mapping and the recent-jobs indexes, all or nothing.
--
-- KEYS[1]  the job record   KEYS[2]  the lease index (sorted set)
-- KEYS[3]  the job's event stream
-- KEYS[4]  the idempotency hash (or the record again when there is no key)
-- KEYS[5]  the index of every job   KEYS[6]  the tenant's index (or KEYS[5] again)
-- ARGV[1]  the record (JSON)   ARGV[2]  the lease score   ARGV[3]  the job id
-- ARGV[4]  the stream's MAXLEN   ARGV[5]  its TTL (also the idempotency mapping's): the
--          job's deadline more than the TTL after its end, since the commits of its steps
--          do not set it again (only the commit that ends it does, store_commit.lua)
-- ARGV[6]  the spec's fingerprint, or "" when there is no idempotency key
-- ARGV[7]  the creation time (the indexes' score)
-- ARGV[8]  how long an index keeps an entry, in seconds; 0: only add the entry (the
--          trim and the TTL are written by a creation in every minute or so, JobStore)
-- (A job without a tenant names the index of every job twice: it is written once.)
-- ARGV[9]  how many events follow   ARGV[10..9+n] the events (JSON)
-- A job that will take turns on a conversation joins its queue, at its creation time
-- (conversation_turn.lua gives the turn in that order):
-- KEYS[7]  the conversation's queue   ARGV[10+n] the queue's TTL ("": no conversation)
--
-- Returns {outcome, job id}: "created"; "exists" (a record with this id is there);
-- "same" (the key names an earlier job asked with this spec: its id); "conflict" (the
-- key names an earlier job asked with another spec: its id).
local keyed = ARGV[6] ~= ''
if keyed then
  local kind = redis.call('TYPE', KEYS[4])['ok']
  if kind == 'hash' then
    local earlier = redis.call('HMGET', KEYS[4], 'job', 'fingerprint')
    if earlier[2] == ARGV[6] then return {'same', earlier[1]} end
    return {'conflict', earlier[1]}
  elseif kind == 'string' then
    -- A mapping written before fingerprints were kept: the spec cannot be compared.
    return {'same', redis.call('GET', KEYS[4])}
  end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {'exists', ARGV[3]} end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local n = tonumber(ARGV[9])
for i = 0, n - 1 do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[10 + i])
end
if n > 0 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
if keyed then
  redis.call('HSET', KEYS[4], 'job', ARGV[3], 'fingerprint', ARGV[6])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
local keep = tonumber(ARGV[8])
local indexes = {KEYS[5]}
if KEYS[6] ~= KEYS[5] then indexes[2] = KEYS[6] end
for _, index in ipairs(indexes) do
  redis.call('ZADD', index, ARGV[7], ARGV[3])
  if keep > 0 then
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(ARGV[7]) - keep))
    redis.call('EXPIRE', index, keep)
  end
end
local queue_ttl = ARGV[10 + n]
if queue_ttl and queue_ttl ~= '' then
  redis.call('ZADD', KEYS[7], 'NX', ARGV[7], ARGV[3])
  if redis.call('TTL', KEYS[7]) < tonumber(queue_ttl) then
    redis.call('EXPIRE', KEYS[7], queue_ttl)
  end
end
return {'created', ARGV[3]}
