-- Credit events to one experiment, all of visitors of one shard, each updating every metric it feeds.
-- KEYS: agg days log more_keys...
-- ARGV: log_max_length expire_at_ms dimensions plans...
--   agg  the shard's aggregates    days  the set of days with a day hash    log  the shard's raw log
--   more_keys  the shard's per-dimension aggregates (ARGV dimensions of them, in the
--     definition's order), then per event 8 keys and the plan's others:
--     assign  the visitor's slice of the assignment hash    day  the aggregates of the event's day
--     state  the visitor's slice of the tracked event's per-visitor "count:sum" hash
--     ids0..ids4  the visitor's slice of the event-id window parts, newest first (ids0 is
--       written, all are read)    others  the state slices of other events that ratio metrics read
--   log_max_length  0 = no log    expire_at_ms  when ids0 may go
--   dimensions  how many dimension aggregate keys follow the fixed KEYS
--   plans  a count, then per plan (what one event name feeds): how many specs, how many others,
--     and per spec 9 values: name, kind ('conversion' | 'mean' | 'count' | 'ratio'), cap ('' for
--     none), and for a ratio the numerator kind, key offset and cap, the denominator kind, key
--     offset and cap (for other kinds '', 0, '' twice); a key offset counts from the event's
--     assign key (2 is its state, 8 its first other); then per event 7 values: plan (1-based),
--     visitor (packed), value (the text as sent), timestamp_ms, day (YYYYMMDD), event_id (digest
--     of visitor and event id, '' for none), log_entry (its second character a placeholder for
--     the variant, one base-32 digit)
-- Events are applied in order, so a repeated event id or a capped total within one call counts
-- as it would in calls of their own.
-- The assignment value is "exposed_ms * 32 + variant", followed, when the experiment has
-- dimensions, by ":" and one character per dimension: the visitor's slice of that dimension.
-- A cap bounds each visitor's total: the aggregates move by the change of the capped total.
-- Returns one code per event: 1 credited, 0 visitor not exposed, 2 event before the exposure,
-- 3 duplicate event id.
local log_max_length = tonumber(ARGV[1])
local expire_at = ARGV[2]
local dimensions = tonumber(ARGV[3])

local plans = {}
local a = 5
for p = 1, tonumber(ARGV[4]) do
  local specs, others = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  plans[p] = {first = a + 2, specs = specs, others = others}
  a = a + 2 + specs * 9
end

local function read_state(key, visitor)
  local raw = redis.call('HGET', key, visitor)
  if not raw then return 0, 0 end
  local c, s = string.match(raw, '^([^:]+):(.+)$')
  return tonumber(c), tonumber(s)
end

local function metric_value(kind, c, s, cap)
  local x = c
  if kind == 'conversion' then
    if c > 0 then return 1 else return 0 end
  elseif kind == 'mean' then
    x = s
  end
  if cap ~= '' then
    local limit = tonumber(cap)
    if x > limit then x = limit end
  end
  return x
end

-- the shortest of 15 or 17 significant digits that reads back as the same double
local function fmt(x)
  local text = string.format('%.15g', x)
  if tonumber(text) ~= x then text = string.format('%.17g', x) end
  return text
end

-- one event: its keys from KEYS[kb] (assign), its values from ARGV[ab] (plan)
local function credit(kb, ab, plan)
  local visitor = ARGV[ab + 1]
  local assigned = redis.call('HGET', KEYS[kb], visitor)
  if not assigned then return 0 end
  local number, slices = string.match(assigned, '^(%d+):?(.*)$')
  local packed = tonumber(number)
  local v = packed % 32
  if tonumber(ARGV[ab + 3]) < (packed - v) / 32 then return 2 end
  local event_id = ARGV[ab + 5]
  if event_id ~= '' then
    for k = kb + 3, kb + 7 do
      if redis.call('HEXISTS', KEYS[k], event_id) == 1 then return 3 end
    end
    redis.call('HSET', KEYS[kb + 3], event_id, 1)
    redis.call('PEXPIREAT', KEYS[kb + 3], expire_at)
  end

  local text = ARGV[ab + 2]
  local value = tonumber(text)
  local c0, s0 = read_state(KEYS[kb + 2], visitor)
  local c1, s1 = c0 + 1, s0 + value
  redis.call('HSET', KEYS[kb + 2], visitor, c1 .. ':' .. fmt(s1))

  -- before/after per-visitor (count, sum) of every state hash a spec names, by key offset
  local before, after = {[2] = {c0, s0}}, {[2] = {c1, s1}}
  local function part(kind, offset, cap, when)
    offset = tonumber(offset)
    if not before[offset] then
      local c, s = read_state(KEYS[kb + offset], visitor)
      before[offset] = {c, s}
      after[offset] = {c, s}
    end
    local st = (when == 0) and before[offset] or after[offset]
    return metric_value(kind, st[1], st[2], cap)
  end

  local day = KEYS[kb + 1]
  -- the increment as written (the client's exact value text for uncapped sums)
  local function add_text(field, increment)
    redis.call('HINCRBYFLOAT', KEYS[1], field, increment)
    redis.call('HINCRBYFLOAT', day, field, increment)
    for d = 1, dimensions do
      local slice = string.sub(slices, d, d)
      redis.call('HINCRBYFLOAT', KEYS[3 + d], slice .. ':' .. field, increment)
    end
  end

  local function add(field, delta)
    if delta ~= 0 then add_text(field, fmt(delta)) end
  end

  for i = 0, plan.specs - 1 do
    local base = plan.first + i * 9
    local name, kind, cap = ARGV[base], ARGV[base + 1], ARGV[base + 2]
    local prefix = name .. ':' .. v .. ':'
    if kind == 'ratio' then
      local x0 = part(ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], 0)
      local x1 = part(ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], 1)
      local y0 = part(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], 0)
      local y1 = part(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], 1)
      add(prefix .. 'xy', x1 * y1 - x0 * y0)
    else
      local m0 = metric_value(kind, c0, s0, cap)
      local m1 = metric_value(kind, c1, s1, cap)
      if kind == 'mean' and cap == '' then
        -- the exact string the client sent, so sums stay exact to the cent
        if value ~= 0 then add_text(prefix .. 'sum', text) end
      else
        add(prefix .. 'sum', m1 - m0)
      end
      add(prefix .. 'ss', m1 * m1 - m0 * m0)
    end
  end
  redis.call('SADD', KEYS[2], ARGV[ab + 4])

  if log_max_length > 0 then
    local entry = ARGV[ab + 6]
    local digit = string.sub('0123456789abcdefghijklmnopqrstuv', v + 1, v + 1)
    entry = string.sub(entry, 1, 1) .. digit .. string.sub(entry, 3)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', log_max_length, '*', 'd', entry)
  end
  return 1
end

local codes = {}
local kb = 4 + dimensions
while a <= #ARGV do
  local plan = plans[tonumber(ARGV[a])]
  codes[#codes + 1] = credit(kb, a, plan)
  kb = kb + 8 + plan.others
  a = a + 7
end
return codes
