-- Store a tool call's output once, and tell whether it completed its round
-- (runs/toolcalls.py): exactly one caller ever gets 1 for a round.
--
-- KEYS[1]  the round's outputs (hash: call id -> output)   KEYS[2]  the round's "submitted" flag
-- ARGV[1]  the call id   ARGV[2]  its output   ARGV[3]  calls in the round   ARGV[4]  TTL (s)
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then return 1 end
end
return 0
