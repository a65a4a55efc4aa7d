-- Record a decision's effects in the customer's hash: the latest alert per rule (kept only if
-- newer, so a redelivered older decision never rolls a cooldown back) and the contacts it made.
-- Idempotent: running it twice with the same arguments changes nothing the second time.
-- KEYS: 1 the customer's hash (see apply_event.lua)
-- ARGV: ttl, n_fired, then n_fired x (rule_id, ts, decision_id), then pairs (field, value) of
--       contacts: "c:<decision>|<action>" -> "<ts>|<channel>"
local K = KEYS[1]
local ttl = tonumber(ARGV[1])
local n_fired = tonumber(ARGV[2])
local i = 3
for _ = 1, n_fired do
  local rule, ts, decision = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local old = redis.call('HGET', K, 'f:' .. rule)
  local old_ts = old and tonumber(string.match(old, '^([^|]+)|')) or nil
  if old_ts == nil or ts > old_ts then
    redis.call('HSET', K, 'f:' .. rule, string.format('%.17g', ts) .. '|' .. decision)
  end
  i = i + 3
end
while i <= #ARGV do
  redis.call('HSET', K, ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIRE', K, ttl)
return 1
