-- Applies one batch (or a group of batches) of a Syncline pipeline and
-- moves its checkpoint, atomically: Redis runs a script alone, and this one
-- checks everything that could fail before its first write, so it either
-- writes all or nothing.
--
-- ARGV[1]  checkpoint hash        ARGV[2] source name
-- ARGV[3]  first seq of the group ('' = a replay: no checkpoint)
-- ARGV[4]  last seq of the group  ARGV[5] position text of the last batch
-- ARGV[6]  the seq the sink expects Redis to hold ('' = none expected)
-- ARGV[7]  n, then n pairs (key, type): keys that must hold that type or
--          nothing
-- then operations, each a code and its arguments (see below).

local function above(a, b) -- decimal texts without leading zeros: a > b
  if #a ~= #b then return #a > #b end
  return a > b
end

local ck, src, first, last, pos, expected = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if first ~= '' then
  local held = redis.call('HGET', ck, src)
  local seq = held and string.match(held, '^(%d+) ')
  if expected ~= '' and (not seq or above(expected, seq)) then
    return {'lost', seq or ''}
  end
  if seq and not above(last, seq) then return {'held', seq} end
  if seq and not above(first, seq) then return {'partial', seq} end
end

local i = 7
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local key, want = ARGV[i], ARGV[i + 1]
  local t = redis.call('TYPE', key)['ok']
  if want == 'counter' then
    -- a string holding an integer (INCR must not fail after writes)
    if t ~= 'none' and (t ~= 'string' or not tonumber(redis.call('GET', key))) then
      return {'type', key, t, 'string holding a count'}
    end
  elseif t ~= 'none' and t ~= want then
    return {'type', key, t, want}
  end
  i = i + 2
end

local function unlink_fields(index)
  local keys = redis.call('HKEYS', index)
  for s = 1, #keys, 1000 do
    redis.call('UNLINK', unpack(keys, s, math.min(s + 999, #keys)))
  end
end

local count = #ARGV
while i <= count do
  local op = ARGV[i]
  if op == 'S' then -- key, value, ttl ('' none), index, entry
    if ARGV[i + 3] == '' then
      redis.call('SET', ARGV[i + 1], ARGV[i + 2])
    else
      redis.call('SET', ARGV[i + 1], ARGV[i + 2], 'EX', ARGV[i + 3])
    end
    redis.call('HSET', ARGV[i + 4], ARGV[i + 1], ARGV[i + 5])
    i = i + 6
  elseif op == 'H' then -- key, ttl, index, entry, m, m field/value pairs
    local key, m = ARGV[i + 1], tonumber(ARGV[i + 5])
    redis.call('DEL', key)
    if m > 0 then
      redis.call('HSET', key, unpack(ARGV, i + 6, i + 5 + 2 * m))
      if ARGV[i + 2] ~= '' then redis.call('EXPIRE', key, ARGV[i + 2]) end
    end
    redis.call('HSET', ARGV[i + 3], key, ARGV[i + 4])
    i = i + 6 + 2 * m
  elseif op == 'D' then -- key, index
    redis.call('DEL', ARGV[i + 1])
    redis.call('HDEL', ARGV[i + 2], ARGV[i + 1])
    i = i + 3
  elseif op == 'T' then -- index: every key it lists, and the index
    unlink_fields(ARGV[i + 1])
    redis.call('DEL', ARGV[i + 1])
    i = i + 2
  elseif op == 'I' then -- index, field, entry
    redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'J' then -- index, field
    redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'U' then -- a key removed
    redis.call('DEL', ARGV[i + 1])
    i = i + 2
  elseif op == 'X' then -- stream, max length ('' none), m, m field/value pairs
    local m = tonumber(ARGV[i + 3])
    if ARGV[i + 2] == '' then
      redis.call('XADD', ARGV[i + 1], '*', unpack(ARGV, i + 4, i + 3 + 2 * m))
    else
      redis.call('XADD', ARGV[i + 1], 'MAXLEN', '~', ARGV[i + 2], '*', unpack(ARGV, i + 4, i + 3 + 2 * m))
    end
    i = i + 4 + 2 * m
  elseif op == 'L' then -- dead letters hash, id counter, record
    local id = redis.call('INCR', ARGV[i + 2])
    redis.call('HSET', ARGV[i + 1], id, ARGV[i + 3])
    i = i + 4
  elseif op == 'R' then -- dead letters hash, id
    redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    return redis.error_reply('syncline: unknown operation ' .. tostring(op))
  end
end

if first ~= '' then
  redis.call('HSET', ck, src, last .. ' ' .. pos)
end
return {'ok'}
