--[[
  Releases a learner-course lock only if this holder still owns it.
  Input:
    KEYS[1] the lock key
    ARGV[1] the holder's token
  Output:
    1 when released, 0 when the lock had expired or belongs to another holder
]]
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
end
return 0
