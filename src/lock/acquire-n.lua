--[[
  Takes every learner-course lock of a lease, or none (a single Redis, where a script may touch
  keys of any slot).
  Input:
    KEYS    the lock keys
    ARGV[1] the holder's token
    ARGV[2] the time to live, in milliseconds
  Output:
    the number of keys another holder had; 0 when every lock was taken
]]
local busy = 0
for i = 1, #KEYS do
  if not redis.call("set", KEYS[i], ARGV[1], "PX", ARGV[2], "NX") then
    busy = busy + 1
  end
end
if busy > 0 then
  for i = 1, #KEYS do
    if redis.call("get", KEYS[i]) == ARGV[1] then
      redis.call("del", KEYS[i])
    end
  end
end
return busy
