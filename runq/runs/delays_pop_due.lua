-- Take the delayed steps that are due (runs/delays.py): each is returned to one caller.
-- KEYS[1] the sorted set of delayed steps; ARGV[1] now (score); ARGV[2] at most this many.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
