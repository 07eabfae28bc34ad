--[[
  Extends a learner-course lock only if this holder still owns it.
  Input:
    KEYS[1] the lock key
    ARGV[1] the holder's token
    ARGV[2] the new time to live, in milliseconds
  Output:
    1 when extended, 0 when the lock had expired or belongs to another holder
]]
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
