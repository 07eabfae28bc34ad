--[[
  Takes the learner-course locks of one or more leases, each lease all or none (a single Redis,
  where a script may touch keys of any slot). No key belongs to two leases.
  Input:
    KEYS     the lock keys, lease after lease
    ARGV[1]  the holder's token
    ARGV[2]  the time to live, in milliseconds
    ARGV[3…] the number of keys of each lease, in order
  Output:
    for each lease, the number of its keys another holder had; 0 when every lock of it was taken
]]
local result = {}
local first = 1
for g = 3, #ARGV do
  local last = first + tonumber(ARGV[g]) - 1
  local busy = 0
  for i = first, last do
    if not redis.call("set", KEYS[i], ARGV[1], "PX", ARGV[2], "NX") then
      busy = busy + 1
    end
  end
  if busy > 0 then
    for i = first, last do
      if redis.call("get", KEYS[i]) == ARGV[1] then
        redis.call("del", KEYS[i])
      end
    end
  end
  result[#result + 1] = busy
  first = last + 1
end
return result
