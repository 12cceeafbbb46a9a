-- Settle a job's budget reservation from its reported usage (runs/budgets.py); once.
-- KEYS[1] reservations: hash job id -> JSON {keys, usd, tokens}
-- ARGV[1] job id; ARGV[2] its cost in USD; ARGV[3] its tokens.
-- Returns 1 when a reservation was settled, 0 when the job held none (or was settled).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local held = cjson.decode(raw)
for _, key in ipairs(held.keys) do
  redis.call('HINCRBYFLOAT', key, 'usd_reserved', -tonumber(held.usd))
  redis.call('HINCRBYFLOAT', key, 'usd_spent', tonumber(ARGV[2]))
  redis.call('HINCRBY', key, 'tok_reserved', -tonumber(held.tokens))
  redis.call('HINCRBY', key, 'tok_spent', tonumber(ARGV[3]))
end
return 1
