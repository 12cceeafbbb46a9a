-- Budget functions shared by fair_admit.lua, fair_release.lua and budget_settle.lua
-- (prepended to each; not a script of its own).
--
-- A job's waiting entry carries its estimate: {usd, tokens, scopes}. `budgets` is
-- {scope: {key, usd, tokens, over, until}}: the hash of the scope's current period
-- (fields usd_spent, usd_reserved, tok_spent, tok_reserved), its limits (either may be
-- absent), what to do over it ('wait' or 'fail') and when the period ends.

local function budget_room(budget, field, limit, estimate)
  -- 'ok', or why not: the estimate alone is more than the budget, or no room is left.
  if not limit then return 'ok' end
  if estimate > limit then return 'estimate_exceeds_budget' end
  local state = redis.call('HMGET', budget.key, field .. '_spent', field .. '_reserved')
  local taken = tonumber(state[1] or '0') + tonumber(state[2] or '0')
  if taken + estimate > limit then return 'budget_spent' end
  return 'ok'
end

local function budget_verdict(info, budgets)
  -- 'ok' | 'wait' | 'fail', with the scope, the reason and when the period ends.
  for _, scope in ipairs(info.scopes or {}) do
    local budget = budgets[scope]
    if budget then
      local reason = budget_room(budget, 'usd', budget.usd, tonumber(info.usd or 0))
      if reason == 'ok' then
        reason = budget_room(budget, 'tok', budget.tokens, tonumber(info.tokens or 0))
      end
      if reason == 'estimate_exceeds_budget' then
        return 'fail', scope, reason, budget['until']
      elseif reason ~= 'ok' then
        return budget.over, scope, reason, budget['until']
      end
    end
  end
  return 'ok', nil, nil, nil
end

local function budget_reserve(job, info, budgets, reservations)
  -- Reserve the job's estimate in every budget it falls under; settled at its end.
  -- Returns whether it reserved anything (a job under no budget holds no reservation).
  local keys = {}
  for _, scope in ipairs(info.scopes or {}) do
    local budget = budgets[scope]
    if budget then
      redis.call('HINCRBYFLOAT', budget.key, 'usd_reserved', tonumber(info.usd or 0))
      redis.call('HINCRBY', budget.key, 'tok_reserved', tonumber(info.tokens or 0))
      redis.call('EXPIREAT', budget.key, math.floor(budget['until']) + 86400 * 32)
      keys[#keys + 1] = budget.key
    end
  end
  if #keys > 0 then
    redis.call('HSET', reservations, job,
      cjson.encode({keys = keys, usd = tonumber(info.usd or 0), tokens = tonumber(info.tokens or 0)}))
  end
  return #keys > 0
end

local function budget_settle(job, reservations, usd, tokens)
  -- Settle the job's reservation from its reported usage, once: 1 when it held one.
  local raw = redis.call('HGET', reservations, job)
  if not raw then return 0 end
  redis.call('HDEL', reservations, job)
  local held = cjson.decode(raw)
  for _, key in ipairs(held.keys) do
    redis.call('HINCRBYFLOAT', key, 'usd_reserved', -tonumber(held.usd))
    redis.call('HINCRBYFLOAT', key, 'usd_spent', tonumber(usd))
    redis.call('HINCRBY', key, 'tok_reserved', -tonumber(held.tokens))
    redis.call('HINCRBY', key, 'tok_spent', tonumber(tokens))
  end
  return 1
end
