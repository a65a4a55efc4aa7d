-- Apply one event to one customer's state and return the state after it, atomically.
-- The semantics are features/memory_store.py's, held identical by tests/contract.
--
-- KEYS (all hash-tagged by customer so a Redis Cluster keeps them on one slot):
--   1 buckets   hash  "<agg>|<metric>|<res>|<bucket>" -> number   (agg s=sum x=max l=last)
--   2 state     hash  wm, aum, bal:<account>, t:<name>, p:<profile field>
--   3 seen      zset  event_id -> event time                    (deduplication)
--   4 results   hash  event_id -> "<wall>|<result json>"        (redelivery replays the same result)
--   5 fired     hash  rule_id -> "<event time>|<decision id>"   (alert cooldowns)
--   6 contacts  zset  "<decision>|<action>|<channel>" -> event time
-- ARGV: event_id, ts, wall, dedup_horizon, lateness, result_retention, ttl, contact_retention,
--       windows ("name:res:buckets,..."), retention ("h:25,d:91"), close_days,
--       then 5 values per op: kind, name, value, flag, amount
local event_id = ARGV[1]
local ts = tonumber(ARGV[2])
local wall = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local lateness = tonumber(ARGV[5])
local result_retention = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local contact_retention = tonumber(ARGV[8])
local windows_spec = ARGV[9]
local retention_spec = ARGV[10]
local close_days = tonumber(ARGV[11])
local first_op = 12

local function num(x)
  return string.format('%.17g', x)
end

local function read_result(status, now)
  local windows = {}
  local spans = {}
  for name, res, n in string.gmatch(windows_spec, '([^:,]+):([hd]):(%d+)') do
    spans[#spans + 1] = {name, res, tonumber(n)}
  end
  local keep = {}
  for res, n in string.gmatch(retention_spec, '([hd]):(%d+)') do keep[res] = tonumber(n) end
  local current = {h = math.floor(now / 3600), d = math.floor(now / 86400)}
  local closes = {}
  local flat = redis.call('HGETALL', KEYS[1])
  -- Sum in a fixed order (sorted fields) so every store adds the same floats the same way.
  local values, fields = {}, {}
  for i = 1, #flat, 2 do
    values[flat[i]] = flat[i + 1]
    fields[#fields + 1] = flat[i]
  end
  table.sort(fields)
  for _, field in ipairs(fields) do
    local value = tonumber(values[field])
    local agg, metric, res, bucket = string.match(field, '^(%a)|([^|]+)|(%a)|(%-?%d+)$')
    bucket = tonumber(bucket)
    local age = current[res] - bucket
    if age >= keep[res] then
      redis.call('HDEL', KEYS[1], field)
    elseif agg == 'l' then
      if age >= 0 and age < close_days then closes[tostring(age)] = value end
    else
      for _, w in ipairs(spans) do
        if w[2] == res and age >= 0 and age < w[3] then
          local key = metric .. '_' .. w[1]
          local old = windows[key]
          if agg == 's' then
            windows[key] = (old or 0) + value
          elseif old == nil or value > old then
            windows[key] = value
          end
        end
      end
    end
  end
  local state = {}
  local sflat = redis.call('HGETALL', KEYS[2])
  for i = 1, #sflat, 2 do state[sflat[i]] = sflat[i + 1] end
  local fired = {}
  local fflat = redis.call('HGETALL', KEYS[5])
  for i = 1, #fflat, 2 do fired[fflat[i]] = fflat[i + 1] end
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. num(now - contact_retention))
  local contacts = redis.call('ZRANGE', KEYS[6], 0, -1, 'WITHSCORES')
  -- Sums as strings so the float survives JSON exactly (cjson prints 14 digits).
  for k, v in pairs(windows) do windows[k] = num(v) end
  for k, v in pairs(closes) do closes[k] = num(v) end
  return cjson.encode({st = status, now = num(now), w = windows, s = state, l = closes,
                       f = fired, c = contacts})
end

local function touch()
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end

local seen = redis.call('ZSCORE', KEYS[3], event_id)
local wm = tonumber(redis.call('HGET', KEYS[2], 'wm') or '')
local has_ops = #ARGV >= first_op
-- The customer's "now": their newest event time. An event without state changes (an outcome)
-- is read as of the watermark and does not move it.
local now = ts
if wm ~= nil then
  if has_ops then now = math.max(wm, ts) else now = wm end
end
if seen then
  local stored = redis.call('HGET', KEYS[4], event_id)
  if stored then
    local bar = string.find(stored, '|', 1, true)
    return {'duplicate', string.sub(stored, bar + 1)}
  end
  return {'duplicate', read_result('duplicate', now)}
end

if ts < now - horizon then
  touch()
  return {'too_late', read_result('too_late', now)}
end

local status = 'applied'
if ts < now - lateness then status = 'late' end
redis.call('ZADD', KEYS[3], ts, event_id)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. num(now - horizon))

local function move_aum(delta)
  local aum = tonumber(redis.call('HGET', KEYS[2], 'aum') or '0')
  redis.call('HSET', KEYS[2], 'aum', num(math.max(aum + delta, 0)))
  local at = tonumber(redis.call('HGET', KEYS[2], 'aum_ts') or '')
  if at == nil or ts > at then redis.call('HSET', KEYS[2], 'aum_ts', num(ts)) end
end

-- Late events (beyond the allowed lateness) still land in their buckets while those are kept;
-- they are reported as late. Only events beyond the deduplication horizon change nothing.
do
  local hour = math.floor(ts / 3600)
  local day = math.floor(ts / 86400)
  local keep = {}
  for res, n in string.gmatch(retention_spec, '([hd]):(%d+)') do keep[res] = tonumber(n) end
  local targets = {}
  if math.floor(now / 3600) - hour < keep['h'] then targets[#targets + 1] = {'h', hour} end
  if math.floor(now / 86400) - day < keep['d'] then targets[#targets + 1] = {'d', day} end
  for i = first_op, #ARGV, 5 do
    local kind, name, value, flag = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local amount = tonumber(ARGV[i + 4])
    if kind == 'sum' then
      local v = tonumber(value)
      for _, t in ipairs(targets) do
        local f = 's|' .. name .. '|' .. t[1] .. '|' .. t[2]
        local old = tonumber(redis.call('HGET', KEYS[1], f) or '0')
        redis.call('HSET', KEYS[1], f, num(old + v))
      end
    elseif kind == 'max' then
      local v = tonumber(value)
      local f = 'x|' .. name .. '|d|' .. day
      local old = tonumber(redis.call('HGET', KEYS[1], f) or '')
      if old == nil or v > old then redis.call('HSET', KEYS[1], f, num(v)) end
    elseif kind == 'set' then
      redis.call('HSET', KEYS[2], name, value)
    elseif kind == 'last' then
      local f = 't:' .. name
      local old = tonumber(redis.call('HGET', KEYS[2], f) or '')
      if old == nil or ts > old then redis.call('HSET', KEYS[2], f, num(ts)) end
    elseif kind == 'balance' then
      local f = 'bal:' .. name
      local v = tonumber(value)
      local old = tonumber(redis.call('HGET', KEYS[2], f) or '')
      redis.call('HSET', KEYS[2], f, num(v))
      if flag == '1' then
        local delta = v
        if old ~= nil then
          delta = v - old
        elseif redis.call('HGET', KEYS[2], 'aum_src') == 'profile' then
          delta = amount
        end
        move_aum(delta)
      end
    elseif kind == 'flow' then
      move_aum(tonumber(value))
    elseif kind == 'aum' then
      -- A profile snapshot older than the last posting that moved AUM does not overwrite it.
      local at = tonumber(redis.call('HGET', KEYS[2], 'aum_ts') or '')
      if at == nil or ts >= at then
        redis.call('HSET', KEYS[2], 'aum', num(tonumber(value)), 'aum_src', 'profile', 'aum_ts', num(ts))
      end
    elseif kind == 'track_aum' then
      local aum = tonumber(redis.call('HGET', KEYS[2], 'aum') or '0')
      local fx = 'x|aum_peak|d|' .. day
      local old = tonumber(redis.call('HGET', KEYS[1], fx) or '')
      if old == nil or aum > old then redis.call('HSET', KEYS[1], fx, num(aum)) end
      if day == math.floor(now / 86400) then
        redis.call('HSET', KEYS[1], 'l|aum_close|d|' .. day, num(aum))
      end
    end
  end
end
-- Only events that change state move the watermark: an outcome (a label, often stamped weeks
-- later and on another topic) must not make the customer's next postings look late.
if has_ops and (wm == nil or ts > wm) then redis.call('HSET', KEYS[2], 'wm', num(ts)) end

local result = read_result(status, now)
if result_retention > 0 then
  redis.call('HSET', KEYS[4], event_id, num(wall) .. '|' .. result)
  if redis.call('HLEN', KEYS[4]) > 8 then
    local rflat = redis.call('HGETALL', KEYS[4])
    for i = 1, #rflat, 2 do
      local at = tonumber(string.match(rflat[i + 1], '^([^|]+)|'))
      if at < wall - result_retention then redis.call('HDEL', KEYS[4], rflat[i]) end
    end
  end
end
touch()
return {status, result}
