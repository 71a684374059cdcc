"""The Lua the fleet runs on the Redis server: one atomic script per operation, server time.

Every script reads the clock with ``redis.call('TIME')`` (seconds since `EPOCH_OFFSET`, so a
double keeps microseconds), never a worker's. Nothing here is called from Python but the four
script texts: `RESERVE` (one send's slot for one key), `SYNC` (the batched flush of several
keys' counts and budget allowances), `UNLOCK` (release a token-exchange lock if still ours) and
`SET_RATE` (a rate set by hand for one key).

The pacer mirrors `forbear.HostGate`'s, fleet-wide: off until the first 429 (or a pause), then
a next-free-slot schedule at a rate learned from the server. A first guess doubles every
``double_every`` seconds of holding sends back, until the server objects; inside a run of 429s
(while the pacer holds sends back) the successes per second are the server's rate, held at
``hold`` of it. From there the rate probes upward slowly: only after ``probe_after`` seconds
without a 429 (a probe that crosses the server's rate costs a run of 429s), then cubic, counted
only while the pacer holds sends back. The learned rate outlives the pacing spell (the hash
expires after ``ttl``): a worker that starts later starts paced at it, and holds it for
``warm_for`` seconds before probing above it.

Slow start. For its first ``learn_for`` seconds of contact a key the fleet knows no rate for is
new: the sends in flight fleet-wide are counted (every reservation is one; sends a worker let
go on its own, and the answers, are reported with its next call). More than ``crowd`` in
flight starts a slow start: the fleet paces from ``start_rate``, doubling every
``start_every`` (the rate reached by the time a slot is given out, and never more than twice
what the fleet sent in the last period, so it does not run ahead of a client that lags). Its
first 429 (after its first period) drops the rate to the successes per second the fleet saw in
its last two periods (never above the rate reached), held at ``hold`` of it; the run of 429s
that may follow measures the server's rate as above. Once nobody has waited on it for two
periods, or after six doublings without a 429, the slow start ends and the key is free (until
it limits).

Announced limits. A worker whose process gate paces a key because its server announced a
limit (`forbear.HostGate.announced`) reports that rate with its next call (the first send after
it heard one reserves, so the fleet starts at once). The fleet paces the key at the tightest
rate reported within ``heard_for`` seconds (a report keeps it fresh; a looser one takes over
once it is stale), from a slow start too (its slots given out are kept), does not probe above
it, and keeps the key paced while it is fresh. A 429 still cuts the rate until the next report.

Generations. Each key's hash counts the times the fleet's view of it tightened (a rate cut
below ``CUT`` of the pace, a pause that grew, a slow start's end); every answer carries the
count, so a worker's sends woken on a slot compare it without I/O (`FleetGate.confirm`). A send
whose view changed asks again (``mode: "confirm"``): a fresh slot, or none when the count it
saw is still the fleet's. Once a worker said its sends ask again (``ask``), a change restarts
the schedule from now: the slots given out ahead are void.
"""

from __future__ import annotations

__all__ = ["EPOCH_OFFSET", "RESERVE", "SET_RATE", "SYNC", "UNLOCK"]

#: Subtracted from the server's Unix time so that a Lua double keeps microseconds.
EPOCH_OFFSET = 1_700_000_000

_COMMON = """
local OFFSET = %(offset)d
local NEG = -1e18
-- A rate cut below this fraction of the pace voids the slots given out ahead (`changed`).
local CUT = 0.9
-- Whether the workers' sends ask again after waiting out a slot (the request's `ask`); and
-- whether the reports applied in this call tightened the view (see `apply_reports`).
local ASK = false
local CHANGED = false

local function clock()
  local t = redis.call('TIME')
  return (tonumber(t[1]) - OFFSET) + tonumber(t[2]) / 1000000
end

local function load(key)
  local flat = redis.call('HGETALL', key)
  local s = {}
  for i = 1, #flat, 2 do s[flat[i]] = tonumber(flat[i + 1]) end
  return s
end

local function get(s, name, default)
  local v = s[name]
  if v == nil then return default end
  return v
end

local function save(key, s, ttl_ms)
  local flat = {}
  for name, value in pairs(s) do
    flat[#flat + 1] = name
    flat[#flat + 1] = string.format('%%.17g', value)
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
  redis.call('PEXPIRE', key, ttl_ms)
end

-- Successes in the current and the previous one-second window (for the first guess).
local function roll_window(s, now)
  if s.win_start == nil then
    s.win_start = now; s.win_ok = 0; s.prev_ok = 0
  elseif now - s.win_start >= 1.0 then
    if now - s.win_start < 2.0 then s.prev_ok = get(s, 'win_ok', 0) else s.prev_ok = 0 end
    s.win_ok = 0; s.win_start = now
  end
end

local function first_guess(s, now)
  local span = math.max(now - s.win_start + ((get(s, 'prev_ok', 0) > 0) and 1 or 0), 0.1)
  local seen = get(s, 'win_ok', 0) + get(s, 'prev_ok', 0)
  return math.max(seen / span * 0.5, 1)
end

-- A pacing spell begins: at the rate learned earlier when there is one, else at a guess.
local function start_pacing(s, now, guess)
  s.paced = 1
  if get(s, 'measured', 0) == 1 and get(s, 'hold', 0) > 0 then
    s.rate = s.hold
  else
    s.rate = guess; s.hold = guess; s.measured = 0
  end
  s.next = now; s.paced_at = now; s.probe_from = now
  s.ep_start = now; s.ep_ok = 0; s.ep_sent = 0; s.ep_no = 0
  s.idle = 0; s.last_probe = NEG
end

-- Still paced? Calm for `calm_after` seconds (no 429, nobody held back): back to the free path.
local function is_paced(s, now, cfg)
  if get(s, 'paced', 0) == 0 then return false end
  local quiet = math.max(get(s, 'last429', NEG), get(s, 'last_delayed', NEG),
                         get(s, 'pause', NEG), get(s, 'paced_at', NEG), get(s, 'ann_at', NEG))
  if now - quiet > cfg.calm_after then
    s.paced = 0
    return false
  end
  return true
end

-- New: nothing learned, in its first `learn_for` seconds of contact (again after a quiet spell).
local function is_new(s, now, cfg)
  if get(s, 'measured', 0) == 1 then
    s.new = 0
  elseif s.born == nil or (get(s, 'new', 0) == 0 and get(s, 'paced', 0) == 0
                           and now - get(s, 'touched', NEG) > cfg.calm_after) then
    s.born = now; s.new = 1; s.fly = 0
  elseif get(s, 'new', 0) == 1 and get(s, 'ramp', 0) == 0 and now >= s.born + cfg.learn_for then
    s.new = 0
  end
  s.touched = now
  return get(s, 'new', 0) == 1
end

-- Successes in the slow start's current and previous period (its success rate).
local function roll_ramp(s, now, cfg)
  local at = get(s, 'r_at', now)
  if now - at >= cfg.start_every then
    if now - at < 2 * cfg.start_every then
      s.r_prev = get(s, 'r_ok', 0); s.r_sent_prev = get(s, 'r_sent', 0)
    else
      s.r_prev = 0; s.r_sent_prev = 0
    end
    s.r_ok = 0; s.r_sent = 0; s.r_at = now
  end
end

-- A crowd met a new key: pace it from `start_rate`, doubling every `start_every`.
local function start_ramp(s, now, cfg)
  s.paced = 1; s.ramp = 1; s.measured = 0
  s.rate = cfg.start_rate; s.hold = cfg.start_rate
  s.next = now; s.paced_at = now; s.probe_from = now; s.last_delayed = now
  s.ep_start = now; s.ep_ok = 0; s.ep_sent = 0; s.ep_no = 0; s.idle = 0; s.last_probe = NEG
  s.r_at = now; s.r_ok = 0; s.r_prev = 0; s.r_sent = 0; s.r_sent_prev = 0
end

local function ramp_rate(s, t, cfg)
  local doublings = math.min(math.max(t - s.ep_start, 0) / cfg.start_every, 24)
  return s.hold * 2 ^ doublings
end

-- The slow start is over: the key is free (not new any more) until it limits.
local function end_ramp(s)
  s.ramp = 0; s.paced = 0; s.new = 0; s.fly = 0
end

-- The slow start's first 429: the successes per second of its last two periods (at most the
-- rate it reached), held at `hold`. The run of 429s that may follow measures the server's.
local function crossed(s, now, cfg)
  roll_ramp(s, now, cfg)
  local span = math.max(now - s.r_at, 0) + ((get(s, 'r_prev', 0) > 0) and cfg.start_every or 0)
  local reached = ramp_rate(s, now, cfg)
  local seen = reached
  if span >= cfg.start_every * 0.5 then
    seen = (get(s, 'r_ok', 0) + get(s, 'r_prev', 0)) / span
  end
  s.hold = math.max(math.min(seen, reached) * cfg.hold, 1); s.rate = s.hold
  s.measured = 1; s.ramp = 0; s.new = 0; s.fly = 0
  s.ep_start = now; s.ep_ok = 0; s.ep_sent = 0; s.ep_no = 0
  CHANGED = true
end

local function on_success(s, now, n, cfg)
  roll_window(s, now)
  s.win_ok = get(s, 'win_ok', 0) + n
  s.ep_ok = get(s, 'ep_ok', 0) + n
  if get(s, 'ramp', 0) == 1 then
    roll_ramp(s, now, cfg)
    s.r_ok = get(s, 'r_ok', 0) + n
  end
end

local function on_429(s, now, n, cfg)
  roll_window(s, now)
  s.ep_no = get(s, 'ep_no', 0) + n
  if get(s, 'ramp', 0) == 1 and is_paced(s, now, cfg) then
    if now - s.ep_start < cfg.start_every then
      -- An answer to the crowd that went before the slow start: it has not yet sent faster
      -- than it began, so it carries on.
      return
    end
    crossed(s, now, cfg)
  elseif not is_paced(s, now, cfg) then
    start_pacing(s, now, first_guess(s, now))
  elseif now - get(s, 'last429', NEG) > 0.5 then
    -- The first 429 after a calm spell: the rate probed at just crossed the server's. A
    -- doubling guess crossed it within its last doubling: half of it is below the server's.
    local factor = cfg.hold
    if get(s, 'measured', 0) == 0 then factor = 0.5 end
    s.hold = math.max(s.rate * factor, 1); s.rate = s.hold; s.measured = 1
    s.ep_start = now; s.ep_ok = 0; s.ep_sent = 0; s.ep_no = 0
  elseif now - s.ep_start >= cfg.measure_after and get(s, 'ep_ok', 0) > 0
         and now - s.last429 <= 0.25 and get(s, 'last_delayed', NEG) >= s.ep_start then
    -- Inside a run of 429s, while the pacer holds sends back, the server's limiter stays
    -- empty: what it let through is its rate (each estimate spans the run so far, so the
    -- latest is the best).
    -- Sends whose slot has come but whose answer is not reported yet succeed in the share
    -- the reported ones did.
    local given = get(s, 'ep_sent', 0) - math.max(get(s, 'next', now) - now, 0) * s.rate
    local done = s.ep_ok + get(s, 'ep_no', 0)
    local pending = math.max(given - done, 0)
    local measured = (s.ep_ok + pending * s.ep_ok / math.max(done, 1)) / (now - s.ep_start)
    s.hold = math.max(measured * cfg.hold, 1); s.rate = s.hold
    s.measured = 1
  end
  s.last429 = now; s.idle = 0; s.probe_from = now
end

local function on_pause(s, now, wait, cfg)
  if now + wait > get(s, 'pause', NEG) then CHANGED = true end
  s.pause = math.max(get(s, 'pause', NEG), now + wait)
  if not is_paced(s, now, cfg) then
    roll_window(s, now)
    start_pacing(s, now, first_guess(s, now))
    s.last429 = math.max(get(s, 'last429', NEG), now)
  end
end

local function announced(s, now, cfg)
  return get(s, 'ann', 0) > 0 and now - get(s, 'ann_at', NEG) < cfg.heard_for
end

local function probe(s, t, cfg)
  local from = math.max(get(s, 'probe_from', t), get(s, 'pause', NEG))
  if get(s, 'measured', 0) == 0 then return end  -- a first guess grows as slots are taken
  if announced(s, t, cfg) then return end  -- the server said its rate: no probing above it
  if t < from then return end  -- a warm start holds the learned rate for a while
  if t - get(s, 'last_delayed', NEG) > 0.5 and get(s, 'last_probe', NEG) > NEG then
    -- Nobody waited on the pacer lately: the rate is not what limits the fleet.
    s.idle = get(s, 'idle', 0) + math.max(t - s.last_probe, 0)
  end
  s.last_probe = math.max(get(s, 'last_probe', NEG), t)
  local busy = math.max(t - from, 0) - get(s, 'idle', 0)
  if busy > cfg.probe_after then
    s.rate = s.hold * math.min(1 + 0.02 * (busy - cfg.probe_after) ^ 3, 10)
  end
end

-- One send's slot: seconds from now, or the pause's end (0 when the key is not paced).
local function reserve(s, now, cfg)
  local pause = get(s, 'pause', NEG)
  local start = math.max(now, pause)
  if not is_paced(s, now, cfg) then return start - now end
  if get(s, 'ramp', 0) == 1 then
    local quiet = math.max(get(s, 'last429', NEG), get(s, 'last_delayed', NEG), pause)
    if now - quiet > 2 * cfg.start_every or now - s.ep_start > 6 * cfg.start_every then
      -- The slow start outgrew the fleet, or grew far, without an objection.
      end_ramp(s)
      return start - now
    end
    -- The rate reached by now: slots given out ahead do not anticipate doublings the
    -- server has not answered yet.
    -- Nor does it run ahead of the fleet: at most twice what it sent in its last period.
    roll_ramp(s, now, cfg)
    s.r_sent = get(s, 'r_sent', 0) + 1
    local sent = math.max(get(s, 'r_sent_prev', 0) / cfg.start_every, cfg.start_rate)
    s.rate = math.min(ramp_rate(s, start, cfg), 2 * sent)
  end
  local interval = 1 / s.rate
  -- At most `burst` slots bank up while idle, so a wait never ends in a stampede.
  local earliest = math.max(s.next, start - (cfg.burst - 1) * interval)
  local slot = math.max(start, earliest)
  s.next = earliest + interval
  s.ep_sent = get(s, 'ep_sent', 0) + 1
  if slot > now then
    s.last_delayed = now
    if get(s, 'measured', 0) == 0 and get(s, 'ramp', 0) == 0 and slot > pause then
      -- Only a first guess so far, and it holds sends back: it doubles every `double_every`
      -- seconds of such pacing until the server objects (no growth while nobody waits).
      s.rate = math.min(s.rate * 2 ^ (interval / cfg.double_every), s.hold * 1024)
    end
  end
  probe(s, now, cfg)
  return slot - now
end

-- A worker's process gate paces the key at `rate` because its server announced a limit: the
-- fleet paces at the tightest rate heard within `heard_for` seconds (hearing one again keeps
-- it fresh; a looser one takes over once the tighter one is stale).
local function on_heard(s, now, rate, cfg)
  if not announced(s, now, cfg) or rate <= s.ann * 1.000001 then
    s.ann = rate; s.ann_at = now
  end
  rate = s.ann
  if not is_paced(s, now, cfg) or get(s, 'ramp', 0) == 1 then
    if get(s, 'ramp', 0) == 1 then CHANGED = true end
    local given = get(s, 'next', now)
    s.ramp = 0; s.new = 0; s.fly = 0
    start_pacing(s, now, rate)
    s.next = math.max(given, now)  -- slots a slow start gave out are taken
  end
  s.measured = 1; s.hold = rate; s.rate = rate
end

-- A worker's reports since its last call: its successes, 429s, a pause and an announced rate.
-- A view that tightened (a rate cut below `CUT` of the pace, a longer pause, a slow start's
-- end) bumps the key's generation: slots given out ahead are void, and once a worker said its
-- sends ask again after waiting (`ASK`, kept as `ask`), the schedule restarts from now.
local function apply_reports(s, now, n429, nok, pause_for, heard, cfg)
  CHANGED = false
  local before = 0
  if is_paced(s, now, cfg) and get(s, 'ramp', 0) == 0 then before = get(s, 'rate', 0) end
  if nok > 0 then on_success(s, now, nok, cfg) end
  if n429 > 0 then on_429(s, now, n429, cfg) end
  if pause_for > 0 then on_pause(s, now, pause_for, cfg) end
  if heard ~= nil and heard > 0 then on_heard(s, now, heard, cfg) end
  if ASK then s.ask = 1 end
  if CHANGED or get(s, 'rate', 0) < CUT * before then
    s.gen = get(s, 'gen', 0) + 1
    if get(s, 'ask', 0) == 1 and get(s, 'next', now) > now then s.next = now end
  end
end

local function paused_for(s, now)
  return math.max(get(s, 'pause', NEG) - now, 0)
end
"""

_COMMON = _COMMON % {"offset": EPOCH_OFFSET}

#: KEYS[1] the key's gate hash. ARGV[1]: JSON ``{"mode": "first" (a worker's first send to the
#: key, which starts paced at a learned rate), "send" or "confirm" (a slot waited out under
#: generation ``gen``: a fresh one only if the generation changed), "gen": n, "report":
#: [successes, 429s, pause seconds, sends let go, answers, announced rate], "cfg": {...},
#: "ask": 0/1, "ttl": ms}``; "sends let go" and "answers" are those of a new key, counted by the
#: worker since its last report; the announced rate is 0 when none was heard.
#: Returns {wait in µs, paced (0/1), rate in milli-sends per second, new (0/1), generation}.
RESERVE = (
    _COMMON
    + """
local req = cjson.decode(ARGV[1])
local cfg = req.cfg
local report = req.report
local now = clock()
local s = load(KEYS[1])
ASK = req.ask == 1
apply_reports(s, now, report[2], report[1], report[3], report[6], cfg)
if req.mode == 'confirm' and get(s, 'gen', 0) == req.gen then
  -- The slot waited out still holds: nothing is reserved.
  save(KEYS[1], s, req.ttl)
  local paced = 0
  if get(s, 'paced', 0) == 1 then paced = 1 end
  return {0, paced, math.floor(get(s, 'rate', 0) * 1000), get(s, 'new', 0), get(s, 'gen', 0)}
end
if req.mode == 'confirm' and get(s, 'ep_sent', 0) > 0 then
  s.ep_sent = s.ep_sent - 1  -- the void slot is given back
end
if req.mode == 'first' and get(s, 'measured', 0) == 1 and get(s, 'hold', 0) > 0 then
  -- A rate the fleet learned earlier (this run or an earlier one): start paced at it, and
  -- hold it for `warm_for` seconds before probing above it.
  if not is_paced(s, now, cfg) then
    start_pacing(s, now, s.hold)
    s.probe_from = now + cfg.warm_for
  elseif now - get(s, 'last_delayed', NEG) > 1.0 then
    s.rate = s.hold; s.probe_from = now + cfg.warm_for; s.idle = 0; s.last_probe = NEG
  end
end
if is_new(s, now, cfg) then
  -- This reservation is one more send in flight; so are the sends let go since, less answers.
  s.fly = math.max(get(s, 'fly', 0) + report[4] - report[5], 0) + 1
  if s.fly > cfg.crowd and not is_paced(s, now, cfg) then start_ramp(s, now, cfg) end
end
local wait = reserve(s, now, cfg)
save(KEYS[1], s, req.ttl)
local paced = 0
if get(s, 'paced', 0) == 1 then paced = 1 end
return {math.floor(wait * 1000000 + 0.5), paced, math.floor(get(s, 'rate', 0) * 1000),
        get(s, 'new', 0), get(s, 'gen', 0)}
"""
)

#: KEYS: the gate hashes, then the budget hashes. ARGV[1]: JSON ``{"gate": [[successes,
#: 429s, pause seconds, sends let go, answers, announced rate], ...], "budget": [[deposits,
#: debt, wanted], ...], "cfg": {...}, "bcfg": {ratio, per_second, ttl}, "ask": 0/1, "ttl": ms,
#: "budget_ttl": ms}`` in the same order. Returns JSON ``{"gate": [[paced, paused for (s), rate,
#: new, generation], ...], "budget": [granted, ...]}``.
SYNC = (
    _COMMON
    + """
local req = cjson.decode(ARGV[1])
local cfg = req.cfg
local now = clock()
local out = {gate = {}, budget = {}}
local ngate = #req.gate
ASK = req.ask == 1
for i, item in ipairs(req.gate) do
  local s = load(KEYS[i])
  apply_reports(s, now, item[2], item[1], item[3], item[6], cfg)
  local new = 0
  if is_new(s, now, cfg) then
    new = 1
    s.fly = math.max(get(s, 'fly', 0) + (item[4] or 0) - (item[5] or 0), 0)
  end
  local paced = 0
  if is_paced(s, now, cfg) then paced = 1 end
  save(KEYS[i], s, req.ttl)
  out.gate[i] = {paced, paused_for(s, now), get(s, 'rate', 0), new, get(s, 'gen', 0)}
end
local b = req.bcfg
local cap = 0
if b.per_second > 0 then cap = math.max(b.per_second, 1) end
for i, item in ipairs(req.budget) do
  local key = KEYS[ngate + i]
  local s = load(key)
  local deposits, debt, wanted = item[1], item[2], item[3]
  -- Deposits fade over `ttl` (as a first attempt counts for `ttl` in the process budget).
  local earned = get(s, 'earned', 0) * math.exp(-math.max(now - get(s, 'at', now), 0) / b.ttl)
  earned = earned + b.ratio * deposits
  local floor = math.min(get(s, 'floor', cap) + math.max(now - get(s, 'floor_at', now), 0)
                         * b.per_second, cap)
  -- Retries a worker took on its own before it had an allowance are the fleet's too.
  local from_floor = math.min(debt, math.max(floor, 0))
  floor = floor - from_floor
  earned = earned - (debt - from_floor)
  local granted = math.floor(math.max(math.min(wanted, floor + math.max(earned, 0)), 0))
  from_floor = math.min(granted, floor)
  floor = floor - from_floor
  earned = earned - (granted - from_floor)
  s.earned = math.max(earned, -cap - 1); s.at = now; s.floor = floor; s.floor_at = now
  save(key, s, req.budget_ttl)
  out.budget[i] = granted
end
return cjson.encode(out)
"""
)

#: KEYS[1] a lock; ARGV[1] its owner. Deletes the lock only if it is still that owner's.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS[1] a key's gate hash; ARGV: a rate (sends per second), ttl (ms). The fleet paces the
#: key at that rate from now on, as if it had measured it (a cut is a new generation).
SET_RATE = (
    _COMMON
    + """
local now = clock()
local s = load(KEYS[1])
local rate = tonumber(ARGV[1])
if get(s, 'paced', 0) == 1 and rate < CUT * get(s, 'rate', 0) then s.gen = get(s, 'gen', 0) + 1 end
s.measured = 1; s.hold = rate; s.paced = 0
start_pacing(s, now, rate)
save(KEYS[1], s, tonumber(ARGV[2]))
return 1
"""
)
