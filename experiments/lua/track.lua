-- Credit events to one experiment, all of visitors of one shard, each updating every metric it feeds.
-- KEYS: agg days log more_keys...
-- ARGV: log_max_length expire_at_ms dimensions plans...
--   agg  the shard's aggregates    days  the set of days with a day hash    log  the shard's raw log
--   more_keys  the shard's per-dimension aggregates (ARGV dimensions of them, in the
--     definition's order), then per event 3 keys, the plan's others and, for an event with an
--     id, 5 more:
--     assign  the visitor's slice of the assignment hash    day  the aggregates of the event's day
--     state  the visitor's slice of the tracked event's per-visitor "count:sum" hash
--     others  the state slices of other events that ratio metrics read
--     ids0..ids4  the visitor's slice of the event-id window parts, newest first (ids0 is
--       written, all are read)
--   log_max_length  0 = no log    expire_at_ms  when ids0 may go
--   dimensions  how many dimension aggregate keys follow the fixed KEYS
--   plans  a count, then per plan (what one event name feeds): how many specs, how many others,
--     and per spec its name, kind ('conversion' | 'mean' | 'count' | 'ratio') and cap ('' for
--     none), a ratio's followed by 6 more: the numerator kind, key offset and cap, the
--     denominator kind, key offset and cap; a key offset counts from the event's assign key
--     (2 is its state, 3 its first other); then per event 7 values: plan (1-based),
--     visitor (packed), value (the text as sent), timestamp_ms, day (YYYYMMDD), event_id (digest
--     of visitor and event id, '' for none), log_entry (its second character a placeholder for
--     the variant, one base-32 digit)
-- Events are applied in order, so a repeated event id or a capped total within one call counts
-- as it would in calls of their own.
-- The assignment value is "exposed_ms * 32 + variant", followed, when the experiment has
-- dimensions, by ":" and one character per dimension: the visitor's slice of that dimension.
-- A cap bounds each visitor's total: the aggregates move by the change of the capped total.
-- A statistic whose increments are always integers (a conversion, a count capped at an integer
-- or not at all, a ratio of two such) is summed over the call and written once per field: the
-- sum of integers is exact, so the stored number is the one the per-event writes would leave.
-- Every other increment is written as it comes, in order (HINCRBYFLOAT rounds each step).
-- Every event's assignment is read first: a call none of whose visitors is exposed (the usual
-- call to an experiment that reads the event but never showed the visitor anything) returns
-- before the plans are read.
-- Returns one code per event: 1 credited, 0 visitor not exposed, 2 event before the exposure,
-- 3 duplicate event id.
local log_max_length = tonumber(ARGV[1])
local expire_at = ARGV[2]
local dimensions = tonumber(ARGV[3])

-- where each plan's values start, how many other state keys its events carry
local plan_at, plan_others = {}, {}
local a = 5
for p = 1, tonumber(ARGV[4]) do
  plan_at[p] = a
  plan_others[p] = tonumber(ARGV[a + 1])
  local specs = tonumber(ARGV[a])
  a = a + 2
  for _ = 1, specs do
    if ARGV[a + 1] == 'ratio' then a = a + 9 else a = a + 3 end
  end
end
local first_event = a

-- every event's assignment, read first (this script never writes one), and where its keys
-- start: a call none of whose visitors is exposed ends here, before anything else is built
local assigned, keys_at, exposed, events = {}, {}, false, 0
local kb = 4 + dimensions
for ab = first_event, #ARGV, 7 do
  events = events + 1
  keys_at[events] = kb
  local raw = redis.call('HGET', KEYS[kb], ARGV[ab + 1])
  assigned[events] = raw or false
  if raw then exposed = true end
  kb = kb + 3 + plan_others[tonumber(ARGV[ab])]
  if ARGV[ab + 5] ~= '' then kb = kb + 5 end
end
if not exposed then
  local codes = {}
  for e = 1, events do codes[e] = 0 end
  return codes
end

local function limit_of(cap)
  if cap == '' then return nil end
  return tonumber(cap)
end

local function integral(kind, limit)
  return kind == 'conversion' or (kind == 'count' and (limit == nil or limit % 1 == 0))
end

local function part_of(kind, offset, cap)
  local limit = limit_of(cap)
  return {kind = kind, offset = tonumber(offset), limit = limit, integral = integral(kind, limit)}
end

-- each plan's specs, read once per call
local plans = {}
for p = 1, #plan_at do
  local at = plan_at[p]
  local count, specs = tonumber(ARGV[at]), {}
  local base = at + 2
  for i = 1, count do
    local spec = {kind = ARGV[base + 1], name = ARGV[base], prefixes = {}}
    if spec.kind == 'ratio' then
      spec.x = part_of(ARGV[base + 3], ARGV[base + 4], ARGV[base + 5])
      spec.y = part_of(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8])
      spec.integral = spec.x.integral and spec.y.integral
      base = base + 9
    else
      spec.limit = limit_of(ARGV[base + 2])
      spec.integral = integral(spec.kind, spec.limit)
      spec.text = spec.kind == 'mean' and spec.limit == nil
      base = base + 3
    end
    specs[i] = spec
  end
  plans[p] = {specs = specs, others = plan_others[p]}
end

local function read_state(key, visitor)
  local raw = redis.call('HGET', key, visitor)
  if not raw then return 0, 0 end
  local c, s = string.match(raw, '^([^:]+):(.+)$')
  return tonumber(c), tonumber(s)
end

local function metric_value(kind, c, s, limit)
  local x = c
  if kind == 'conversion' then
    if c > 0 then return 1 else return 0 end
  elseif kind == 'mean' then
    x = s
  end
  if limit ~= nil and x > limit then x = limit end
  return x
end

-- the shortest of 15 or 17 significant digits that reads back as the same double
local function fmt(x)
  local text = string.format('%.15g', x)
  if tonumber(text) ~= x then text = string.format('%.17g', x) end
  return text
end

-- the integer increments of the call, summed per key and field, written at the end
local totals, keys_in_order = {}, {}
local function add_integer(key, field, delta)
  local of_key = totals[key]
  if not of_key then
    of_key = {sums = {}, fields = {}}
    totals[key] = of_key
    keys_in_order[#keys_in_order + 1] = key
  end
  local total = of_key.sums[field]
  if total == nil then
    of_key.fields[#of_key.fields + 1] = field
    of_key.sums[field] = delta
  else
    of_key.sums[field] = total + delta
  end
end

-- one increment of a field in the shard's, the day's and the dimensions' aggregates
local function add_text(day, slices, field, increment)
  redis.call('HINCRBYFLOAT', KEYS[1], field, increment)
  redis.call('HINCRBYFLOAT', day, field, increment)
  for d = 1, dimensions do
    redis.call('HINCRBYFLOAT', KEYS[3 + d], string.sub(slices, d, d) .. ':' .. field, increment)
  end
end

local function add(day, slices, field, delta, whole)
  if delta == 0 then return end
  if not whole then
    add_text(day, slices, field, fmt(delta))
    return
  end
  add_integer(KEYS[1], field, delta)
  add_integer(day, field, delta)
  for d = 1, dimensions do
    add_integer(KEYS[3 + d], string.sub(slices, d, d) .. ':' .. field, delta)
  end
end

local days_added = {}

-- one event: its keys from KEYS[kb] (assign), its values from ARGV[ab] (plan), its visitor's
-- assignment as read above
local function credit(kb, ab, plan, assignment)
  if not assignment then return 0 end
  local visitor = ARGV[ab + 1]
  local number, slices = string.match(assignment, '^(%d+):?(.*)$')
  local packed = tonumber(number)
  local v = packed % 32
  if tonumber(ARGV[ab + 3]) < (packed - v) / 32 then return 2 end
  local event_id = ARGV[ab + 5]
  if event_id ~= '' then
    local ids = kb + 3 + plan.others
    for k = ids, ids + 4 do
      if redis.call('HEXISTS', KEYS[k], event_id) == 1 then return 3 end
    end
    redis.call('HSET', KEYS[ids], event_id, 1)
    redis.call('PEXPIREAT', KEYS[ids], expire_at)
  end

  local text = ARGV[ab + 2]
  local value = tonumber(text)
  local c0, s0 = read_state(KEYS[kb + 2], visitor)
  local c1, s1 = c0 + 1, s0 + value
  redis.call('HSET', KEYS[kb + 2], visitor, c1 .. ':' .. fmt(s1))

  -- before/after per-visitor (count, sum) of every state hash a spec names, by key offset
  local before, after = {[2] = {c0, s0}}, {[2] = {c1, s1}}
  local function part(p, state)
    local offset = p.offset
    if not before[offset] then
      local c, s = read_state(KEYS[kb + offset], visitor)
      before[offset] = {c, s}
      after[offset] = before[offset]
    end
    local st = state[offset]
    return metric_value(p.kind, st[1], st[2], p.limit)
  end

  local day = KEYS[kb + 1]
  for _, spec in ipairs(plan.specs) do
    local prefix = spec.prefixes[v]
    if not prefix then
      prefix = spec.name .. ':' .. v .. ':'
      spec.prefixes[v] = prefix
    end
    if spec.kind == 'ratio' then
      local x0, x1 = part(spec.x, before), part(spec.x, after)
      local y0, y1 = part(spec.y, before), part(spec.y, after)
      add(day, slices, prefix .. 'xy', x1 * y1 - x0 * y0, spec.integral)
    else
      local m0 = metric_value(spec.kind, c0, s0, spec.limit)
      local m1 = metric_value(spec.kind, c1, s1, spec.limit)
      if spec.text then
        -- the exact string the client sent, so sums stay exact to the cent
        if value ~= 0 then add_text(day, slices, prefix .. 'sum', text) end
      else
        add(day, slices, prefix .. 'sum', m1 - m0, spec.integral)
      end
      add(day, slices, prefix .. 'ss', m1 * m1 - m0 * m0, spec.integral)
    end
  end
  local day_text = ARGV[ab + 4]
  if not days_added[day_text] then
    redis.call('SADD', KEYS[2], day_text)
    days_added[day_text] = true
  end

  if log_max_length > 0 then
    local entry = ARGV[ab + 6]
    local digit = string.sub('0123456789abcdefghijklmnopqrstuv', v + 1, v + 1)
    entry = string.sub(entry, 1, 1) .. digit .. string.sub(entry, 3)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', log_max_length, '*', 'd', entry)
  end
  return 1
end

local codes = {}
for e = 1, events do
  local ab = first_event + (e - 1) * 7
  codes[e] = credit(keys_at[e], ab, plans[tonumber(ARGV[ab])], assigned[e])
end
for _, key in ipairs(keys_in_order) do
  local of_key = totals[key]
  for _, field in ipairs(of_key.fields) do
    redis.call('HINCRBYFLOAT', key, field, fmt(of_key.sums[field]))
  end
end
return codes
