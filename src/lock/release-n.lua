--[[
  Releases the learner-course locks of a lease that this holder still owns (a single Redis).
  Input:
    KEYS    the lock keys
    ARGV[1] the holder's token
  Output:
    the number of locks released (the others had expired or belong to another holder)
]]
local released = 0
for i = 1, #KEYS do
  if redis.call("get", KEYS[i]) == ARGV[1] then
    released = released + redis.call("del", KEYS[i])
  end
end
return released
