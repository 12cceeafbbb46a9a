-- Store a tool call's output once, and tell whether it completed its round
-- (runs/toolcalls.py): exactly one caller ever gets 1 for a round, the one whose output
-- was the round's last to be stored. The hash gains one field per stored output, in
-- calls that cannot interleave, so its length passes each count once; a repeat (a
-- redelivered task, a decision stored twice) stores nothing and completes nothing.
--
-- KEYS[1]  the round's outputs (hash: call id -> output)
-- ARGV[1]  the call id   ARGV[2]  its output   ARGV[3]  calls in the round   ARGV[4]  TTL (s)
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('HLEN', KEYS[1]) == tonumber(ARGV[3]) then return 1 end
return 0
