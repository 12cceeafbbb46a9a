-- Commit a step (runs/store.py, JobStore.commit): compare-and-set the record on its
-- version, append the step's events, move the lease, release the lock. (A new record is
-- written by store_create.lua.) A step's commit is refused while the job's cancel flag
-- is up, in the same atomic call: a cancel never loses a race with a step's outcome.
--
-- KEYS[1]  the job record   KEYS[2]  its lock   KEYS[3]  the lease index (sorted set)
-- KEYS[4]  the job's event stream   KEYS[5]  its cancel flag
-- ARGV[1]  the version expected in the stored record
-- ARGV[2]  the new record (JSON, "version" its first key)
-- ARGV[3]  the lock owner to release, or ""
-- ARGV[4]  the lease: a score, "" to drop it, "-" to leave it as it is
-- ARGV[5]  the record's TTL in seconds: 0 (none) until the job has ended
-- ARGV[6]  the job id (lease member)
-- ARGV[7]  how many events follow   ARGV[8]  the stream's MAXLEN
-- ARGV[9]  the stream's TTL, set again by the commit that ends the job
-- ARGV[10] "1": refuse to write while the cancel flag is up; "0": write regardless
-- ARGV[11..10+n] the events (JSON), n = ARGV[7]
-- A job's ending commit (JobStore.ending, EndingWrites) carries three more keys, and may
-- carry two more writes, done only when the job is written, so a cancel that refuses the
-- end refuses them too:
-- KEYS[6]  a conversation record    ARGV[11+n] its JSON ("": none)   ARGV[12+n] its TTL
-- KEYS[7]  a conversation's turn lock   ARGV[13+n] "1": give it back if the job holds it
-- KEYS[8]  the starts waiting for this end (JobStore.wait_for_end, turn_wait.lua): read
--          with the record, taken, and returned for the step to send
-- KEYS[9]  (optional) the job's entry in Celery's result backend: ARGV[14+n] its value
--          and ARGV[15+n] its TTL (0: none), written and published as Celery's Redis
--          backend does (`SET ... EX`, then `PUBLISH` on the key for a waiting `get()`)
--
-- Returns 1 when written, 0 on a version mismatch, -1 when the record is gone, -2 when
-- the cancel flag refused the write (nothing was written; the lock is still held); an
-- ending commit that was written returns the waiting starts (`job_id|token`, comma-
-- separated) if any.
-- The record, the lock (when one is to be released), for a step's outcome the cancel
-- flag and for an end the waiting starts: one MGET, read before anything is written (the
-- script is atomic, so the lock read first is the lock the end of the script releases).
local guarded = ARGV[10] == '1'
local releasing = ARGV[3] ~= ''
local wanted = {KEYS[1]}
if releasing then wanted[#wanted + 1] = KEYS[2] end
local cancel_at, next_at = false, false
if guarded then wanted[#wanted + 1] = KEYS[5]; cancel_at = #wanted end
if KEYS[8] then wanted[#wanted + 1] = KEYS[8]; next_at = #wanted end
local found = redis.call('MGET', unpack(wanted))
local data = found[1]
if not data then return -1 end
local current = string.match(data, '"version": (%d+)')
if current ~= ARGV[1] then return 0 end
local lock_owner = releasing and found[2] or false
if cancel_at and found[cancel_at] then return -2 end
local ended = tonumber(ARGV[5]) > 0
if ended then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], ARGV[6])
elseif ARGV[4] ~= '-' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
end
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'data', ARGV[11 + i])
end
-- The stream got its TTL when the job was created (store_create.lua); XADD keeps it. Only
-- the commit that ends the job (its `job.final` event) sets it again, from the end.
if n > 0 and ended then redis.call('EXPIRE', KEYS[4], ARGV[9]) end
if releasing and lock_owner == ARGV[3] then redis.call('DEL', KEYS[2]) end
local record = ARGV[11 + n]
if record and record ~= '' then
  redis.call('SET', KEYS[6], record, 'EX', ARGV[12 + n])
end
if ARGV[13 + n] == '1' and redis.call('GET', KEYS[7]) == ARGV[6] then
  redis.call('DEL', KEYS[7])
end
if KEYS[9] then
  if tonumber(ARGV[15 + n]) > 0 then
    redis.call('SET', KEYS[9], ARGV[14 + n], 'EX', ARGV[15 + n])
  else
    redis.call('SET', KEYS[9], ARGV[14 + n])
  end
  redis.call('PUBLISH', KEYS[9], ARGV[14 + n])
end
local waiting = next_at and found[next_at]
if waiting then
  redis.call('DEL', KEYS[8])
  return waiting
end
return 1
