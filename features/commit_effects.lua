-- Record a decision's effects for one customer: the latest alert per rule (kept only if newer,
-- so a redelivered older decision never rolls a cooldown back) and the contacts it made.
-- Idempotent: running it twice with the same arguments changes nothing the second time.
-- KEYS: 1 fired hash, 2 contacts zset (see apply_event.lua)
-- ARGV: ttl, n_fired, then n_fired x (rule_id, ts, decision_id), then pairs (member, ts)
local ttl = tonumber(ARGV[1])
local n_fired = tonumber(ARGV[2])
local i = 3
for _ = 1, n_fired do
  local rule, ts, decision = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local old = redis.call('HGET', KEYS[1], rule)
  local old_ts = old and tonumber(string.match(old, '^([^|]+)|')) or nil
  if old_ts == nil or ts > old_ts then
    redis.call('HSET', KEYS[1], rule, string.format('%.17g', ts) .. '|' .. decision)
  end
  i = i + 3
end
while i <= #ARGV do
  redis.call('ZADD', KEYS[2], tonumber(ARGV[i + 1]), ARGV[i])
  i = i + 2
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
