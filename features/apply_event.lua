-- Apply one event to one customer's state and return the state after it, atomically.
-- The semantics are features/memory_store.py's and features/buckets.py's, held identical by
-- tests/contract. __NAME__ tokens are filled in from the feature catalog and the store limits
-- when the script is loaded (features/redis_store.py).
--
-- KEYS: 1 the customer's hash  (see docs/features.md for its fields)
--       2 the stored result of this event (a string with its own expiry)
-- ARGV: 1 event digest (__DIGEST_BYTES__ bytes)  2 event time  3 wall time  4 '1' if the event changes state
--       5 bucket deltas (encoded columns)  6 remembered-time slots ('1,3')  7 session token
--       8 AUM op ('', 'b' balance, 'f' flow, 'a' profile AUM)  9 balance field  10 cents
--       11 moves AUM ('1'/'0')  12 signed cents   13.. plain fields to set: name, value
local K = KEYS[1]
local digest = ARGV[1]
local ts = tonumber(ARGV[2])
local wall = tonumber(ARGV[3])
local has_ops = ARGV[4] == '1'

local AGGS = '__AGGS__'
local NCOL = #AGGS
-- A bucket is stored as up to #GROUPS fields ("<res><index>", "<res><index>.1", ...), each holding
-- a range of columns, so that no value passes the 64-byte listpack limit.
local GROUPS = __GROUPS__
local NLAST = __NLAST__
local SESSION_COL = __SESSION_COL__
local SESSIONS_KEPT = __SESSIONS_KEPT__
local AUM_COLS = {__AUM_MAX__, __AUM_MIN__, __AUM_CLOSE__}
local AMAX, AMIN, ACLOSE = __AUM_MAX__, __AUM_MIN__, __AUM_CLOSE__
local DIGEST_BYTES, DIGESTS_PER_FIELD = __DIGEST_BYTES__, __DIGESTS_PER_FIELD__
local HOUR_KEEP, DAY_KEEP, LONGEST = __HOUR_KEEP__, __DAY_KEEP__, __LONGEST__
local HORIZON, LATENESS, DEDUP_SLOT = __HORIZON__, __LATENESS__, __DEDUP_SLOT__
local RETENTION, RETENTION_EX = __RETENTION__, __RETENTION_EX__
local TTL, CONTACT_KEEP = __TTL__, __CONTACT_KEEP__

local DIG = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36(n)
  if n < 0 then return '-' .. b36(-n) end
  if n < 36 then return string.sub(DIG, n + 1, n + 1) end
  local s = ''
  while n > 0 do
    local r = n % 36
    s = string.sub(DIG, r + 1, r + 1) .. s
    n = (n - r) / 36
  end
  return s
end
local function unb36(s)
  if string.sub(s, 1, 1) == '-' then return -tonumber(string.sub(s, 2), 36) end
  return tonumber(s, 36)
end
local function fmt(x) return string.format('%.17g', x) end
local function decode(s)
  local v, i = {}, 1
  for part in string.gmatch(s .. ',', '([^,]*),') do
    if part ~= '' then v[i] = unb36(part) end
    i = i + 1
  end
  return v
end
local function encode(v, n)
  local parts, last = {}, 0
  for i = 1, n do
    if v[i] ~= nil then parts[i] = b36(v[i]); last = i else parts[i] = '' end
  end
  return table.concat(parts, ',', 1, last)
end
local function decode_into(v, s, first)
  local i = first
  for part in string.gmatch(s .. ',', '([^,]*),') do
    if part ~= '' then v[i] = unb36(part) end
    i = i + 1
  end
end
-- AUM max, min and close are stored only where they differ: an empty min is the max, an empty
-- close is the min (the three are always written together, so nothing else leaves them empty).
local function expand_aum(v)
  if v[AMAX] ~= nil and v[AMIN] == nil then v[AMIN] = v[AMAX] end
  if v[AMIN] ~= nil and v[ACLOSE] == nil then v[ACLOSE] = v[AMIN] end
end
local function group_field(base, g)
  if g == 1 then return base end
  return base .. '.' .. (g - 1)
end
local function merge_field(base, src)
  local names = {}
  for g = 1, #GROUPS do names[g] = group_field(base, g) end
  local cur = redis.call('HMGET', K, unpack(names))
  local dst = {}
  for g = 1, #GROUPS do
    if cur[g] then decode_into(dst, cur[g], GROUPS[g][1]) end
  end
  expand_aum(dst)
  for c, v in pairs(src) do
    local old = dst[c]
    if old == nil then
      dst[c] = v
    else
      local a = string.sub(AGGS, c, c)
      if a == 's' then dst[c] = old + v
      elseif a == 'x' then if v > old then dst[c] = v end
      elseif a == 'n' then if v < old then dst[c] = v end
      else dst[c] = v end
    end
  end
  local keep_close = dst[ACLOSE] ~= dst[AMIN]
  local keep_min = dst[AMIN] ~= dst[AMAX]
  for g = 1, #GROUPS do
    local parts, last = {}, 0
    for c = GROUPS[g][1], GROUPS[g][2] do
      local j = c - GROUPS[g][1] + 1
      local kept = dst[c] ~= nil
      if c == ACLOSE then kept = kept and keep_close elseif c == AMIN then kept = kept and keep_min end
      if kept then parts[j] = b36(dst[c]); last = j else parts[j] = '' end
    end
    if last > 0 then redis.call('HSET', K, names[g], table.concat(parts, ',', 1, last)) end
  end
end

local function snapshot(status, now)
  local flat = redis.call('HGETALL', K)
  local out = {status, fmt(now)}
  for i = 1, #flat, 2 do
    if string.byte(flat[i], 1) ~= 69 then -- not 'E' (event digests stay in Redis)
      out[#out + 1] = flat[i]
      out[#out + 1] = flat[i + 1]
    end
  end
  return cjson.encode(out)
end

-- A redelivered event is decided again from the features of its first application, but with
-- the cooldowns and contacts as they are now: a decision committed since (by this event's first
-- run or a later one) must count, or a retried batch could alert or contact twice.
local function with_current_effects(stored)
  local doc = cjson.decode(stored)
  local out = {doc[1], doc[2]}
  for i = 3, #doc, 2 do
    local p = string.sub(doc[i], 1, 2)
    if p ~= 'f:' and p ~= 'c:' then
      out[#out + 1] = doc[i]
      out[#out + 1] = doc[i + 1]
    end
  end
  local flat = redis.call('HGETALL', K)
  for i = 1, #flat, 2 do
    local p = string.sub(flat[i], 1, 2)
    if p == 'f:' or p == 'c:' then
      out[#out + 1] = flat[i]
      out[#out + 1] = flat[i + 1]
    end
  end
  return cjson.encode(out)
end

local wm = tonumber(redis.call('HGET', K, 'wm') or '')
-- The customer's "now": their newest event time. An event without state changes (an outcome)
-- is read as of the watermark and does not move it.
local now = ts
if wm ~= nil then
  if has_ops then now = math.max(wm, ts) else now = wm end
end
local ch, cd = math.floor(now / 3600), math.floor(now / 86400)

if ts < now - HORIZON then
  redis.call('EXPIRE', K, TTL)
  return 'too_late|' .. snapshot('too_late', now)
end

-- Deduplication: digests of the events of each slot of event time, DIGESTS_PER_FIELD to a field
-- ("E<slot>", "E<slot>:1"...).
local efield = 'E' .. b36(math.floor(ts / DEDUP_SLOT))
local free_field, free_value = efield, nil
do
  local f, k = efield, 0
  while true do
    local v = redis.call('HGET', K, f)
    if not v then free_field, free_value = f, nil; break end
    for p = 1, #v, DIGEST_BYTES do
      if string.sub(v, p, p + DIGEST_BYTES - 1) == digest then
        local stored = redis.call('GET', KEYS[2])
        if stored then
          local bar = string.find(stored, '|', 1, true)
          if wall - tonumber(string.sub(stored, 1, bar - 1)) <= RETENTION then
            return 'duplicate|' .. with_current_effects(string.sub(stored, bar + 1))
          end
        end
        return 'duplicate|' .. snapshot('duplicate', now)
      end
    end
    if #v < DIGEST_BYTES * DIGESTS_PER_FIELD then free_field, free_value = f, v; break end
    k = k + 1
    f = efield .. ':' .. k
  end
end

local status = 'applied'
if ts < now - LATENESS then status = 'late' end
redis.call('HSET', K, free_field, (free_value or '') .. digest)

local function day_target(day)
  if cd - day < DAY_KEEP then return 'D' .. b36(day) end
  local wk = math.floor((day + 3) / 7)
  if 7 * wk + 3 >= cd - LONGEST + 1 then return 'W' .. b36(wk) end
  return nil
end

-- Settle when the hour moved: roll aged buckets up, drop expired ones, old digests, contacts.
local function settle()
  local flat = redis.call('HGETALL', K)
  local buckets, order = {}, {}
  for i = 1, #flat, 2 do
    local f = flat[i]
    local c = string.byte(f, 1)
    if c == 72 or c == 68 or c == 87 then -- H, D, W
      local res, idx_text, g = string.match(f, '^(%a)([^.]+)%.?(%d*)$')
      local base = res .. idx_text
      local b = buckets[base]
      if b == nil then
        b = {res = c, idx = unb36(idx_text), parts = {}}
        buckets[base] = b
        order[#order + 1] = base
      end
      local group = 1
      if g ~= '' then group = tonumber(g) + 1 end
      b.parts[group] = {f, flat[i + 1]}
    elseif c == 69 then -- E
      local h = unb36(string.match(f, '^E([^:]+)'))
      if (h + 1) * DEDUP_SLOT <= now - HORIZON then redis.call('HDEL', K, f) end
    elseif string.sub(f, 1, 2) == 'c:' then
      local at = tonumber(string.match(flat[i + 1], '^([^|]+)'))
      if at < now - CONTACT_KEEP then redis.call('HDEL', K, f) end
    end
  end
  local moves = {}
  for _, base in ipairs(order) do
    local b = buckets[base]
    local drop = false
    if b.res == 72 and ch - b.idx >= HOUR_KEEP then
      moves[#moves + 1] = {b.idx * 3600, 0, b, math.floor(b.idx / 24)}
    elseif b.res == 68 and cd - b.idx >= DAY_KEEP then
      moves[#moves + 1] = {b.idx * 86400, 1, b, b.idx}
    elseif b.res == 87 and 7 * b.idx + 3 < cd - LONGEST + 1 then
      drop = true
    end
    if drop then
      for _, part in pairs(b.parts) do redis.call('HDEL', K, part[1]) end
    end
  end
  table.sort(moves, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for _, m in ipairs(moves) do
    local vec = {}
    for g, part in pairs(m[3].parts) do
      redis.call('HDEL', K, part[1])
      decode_into(vec, part[2], GROUPS[g][1])
    end
    expand_aum(vec)
    local target = day_target(m[4])
    if target then merge_field(target, vec) end
  end
end

if has_ops then
  if wm == nil or math.floor(wm / 3600) ~= ch then settle() end

  for i = 13, #ARGV, 2 do
    local name, value = ARGV[i], ARGV[i + 1]
    if name == 'pc' then
      local old = redis.call('HGET', K, 'pc')
      if old then
        local merged = {}
        for j = 1, #value do
          local n = string.sub(value, j, j)
          if n == '-' then n = string.sub(old, j, j) end
          merged[j] = n
        end
        value = table.concat(merged)
      end
    end
    redis.call('HSET', K, name, value)
  end

  local delta = decode(ARGV[5])
  local session = ARGV[7]
  if session ~= '' then
    local ss = redis.call('HGET', K, 'ss')
    local tokens = {}
    if ss then
      for tok in string.gmatch(ss, '[^,]+') do tokens[#tokens + 1] = tok end
    end
    local known = false
    for _, tok in ipairs(tokens) do if tok == session then known = true end end
    if not known then
      delta[SESSION_COL] = (delta[SESSION_COL] or 0) + 1
      local kept = {session}
      for j = 1, math.min(#tokens, SESSIONS_KEPT - 1) do kept[#kept + 1] = tokens[j] end
      redis.call('HSET', K, 'ss', table.concat(kept, ','))
    end
  end
  if next(delta) ~= nil then
    local target
    local hour = math.floor(ts / 3600)
    if ch - hour < HOUR_KEEP then target = 'H' .. b36(hour) else target = day_target(math.floor(ts / 86400)) end
    if target then merge_field(target, delta) end
  end

  if ARGV[6] ~= '' then
    local cur = redis.call('HGET', K, 't')
    local times = {}
    if cur then times = decode(cur) end
    local at = math.floor(ts)
    for slot in string.gmatch(ARGV[6], '%d+') do
      local j = tonumber(slot)
      if times[j] == nil or at > times[j] then times[j] = at end
    end
    redis.call('HSET', K, 't', encode(times, NLAST))
  end

  local aum_kind = ARGV[8]
  if aum_kind ~= '' then
    local aum_s = redis.call('HGET', K, 'aum')
    local aum = 0
    if aum_s then aum = math.floor(tonumber(aum_s) * 100 + 0.5) end
    local at = tonumber(redis.call('HGET', K, 'at') or '')
    local new_at = at
    local from_profile = false
    local function move(delta_cents)
      aum = math.max(aum + delta_cents, 0)
      if new_at == nil or ts > new_at then new_at = ts end
    end
    if aum_kind == 'b' then
      local old = redis.call('HGET', K, ARGV[9])
      local v = tonumber(ARGV[10])
      redis.call('HSET', K, ARGV[9], b36(v))
      if ARGV[11] == '1' then
        if old then
          move(v - unb36(old))
        elseif redis.call('HGET', K, 'as') == 'p' then
          move(tonumber(ARGV[12]))
        else
          move(v)
        end
      end
    elseif aum_kind == 'f' then
      move(tonumber(ARGV[10]))
    elseif at == nil or ts >= at then
      -- A profile snapshot older than the last posting that moved AUM does not overwrite it.
      aum = tonumber(ARGV[10])
      new_at = ts
      from_profile = true
    end
    redis.call('HSET', K, 'aum', string.format('%.15g', aum / 100))
    if new_at ~= nil then redis.call('HSET', K, 'at', fmt(new_at)) end
    if from_profile then redis.call('HSET', K, 'as', 'p') end
    local seen = {}
    for _, c in ipairs(AUM_COLS) do seen[c] = aum end
    merge_field('D' .. b36(cd), seen)
  end

  if wm == nil or ts > wm then redis.call('HSET', K, 'wm', fmt(ts)) end
end

redis.call('EXPIRE', K, TTL)
local snap = snapshot(status, now)
if RETENTION > 0 then
  redis.call('SET', KEYS[2], fmt(wall) .. '|' .. snap, 'EX', RETENTION_EX)
end
return status .. '|' .. snap
