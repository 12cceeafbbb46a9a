-- Settle a job's budget reservation from its reported usage (runs/budgets.py); once.
-- budget_check.lua is prepended (its `budget_settle`); an ended job's release settles
-- in the same call instead (fair_release.lua).
-- KEYS[1] reservations: hash job id -> JSON {keys, usd, tokens}
-- ARGV[1] job id; ARGV[2] its cost in USD; ARGV[3] its tokens.
-- Returns 1 when a reservation was settled, 0 when the job held none (or was settled).
return budget_settle(ARGV[1], KEYS[1], ARGV[2], ARGV[3])
