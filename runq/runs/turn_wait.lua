-- Ask the end of a job to start a waiting one (runs/store.py, JobStore.wait_for_end).
-- Several jobs may wait for one end: the next in the conversation's line, and a
-- continuation of the job, for one. Each leaves the token of its waiting start, and the
-- commit that ends the job (store_commit.lua) takes them all in the MGET it makes anyway.
--
-- KEYS[1] the marks of the starts waiting for the job's end: `job|token`, comma-separated
-- ARGV[1] the waiting job   ARGV[2] the token of its waiting start   ARGV[3] life (ms)
--
-- A job's mark replaces any earlier mark of the same job (a start it no longer waits
-- with). Returns how many starts wait.
local mine = ARGV[1] .. '|' .. ARGV[2]
local marks = {mine}
local found = redis.call('GET', KEYS[1])
if found then
  for mark in string.gmatch(found, '[^,]+') do
    if string.sub(mark, 1, #ARGV[1] + 1) ~= ARGV[1] .. '|' then marks[#marks + 1] = mark end
  end
end
redis.call('SET', KEYS[1], table.concat(marks, ','), 'PX', ARGV[3])
return #marks
