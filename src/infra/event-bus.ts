import type { RedisClient } from './redis.js';

/** The event bus's Redis did not answer: publishing waits for it. */
export class EventBusUnavailableError extends Error {
  override name = 'EventBusUnavailableError';
}

/**
 * Trims the stream of the entries every consumer group has been delivered, then answers how many
 * more entries it may take before it holds `limit` that some group (or, with no group, anyone)
 * has not had (contract.md "Outbound events", Delivery). One script, so that no group appears or
 * reads between the look at the groups and the trim. Entries up to a group's `last-delivered-id`
 * are delivered to it; the slowest group's bounds the trim (`MINID` keeps ids at or above it, so
 * the bound is that id plus one). With no group nothing is trimmed and every entry counts.
 */
const ROOM_SCRIPT = `
local stream = KEYS[1]
local limit = tonumber(ARGV[1])
if redis.call('EXISTS', stream) == 0 then return limit end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups > 0 then
  local minMs, minSeq
  for _, group in ipairs(groups) do
    for i = 1, #group, 2 do
      if group[i] == 'last-delivered-id' then
        local ms, seq = string.match(group[i + 1], '^(%d+)-(%d+)$')
        ms = tonumber(ms)
        seq = tonumber(seq)
        if minMs == nil or ms < minMs or (ms == minMs and seq < minSeq) then
          minMs = ms
          minSeq = seq
        end
      end
    end
  end
  redis.call('XTRIM', stream, 'MINID', string.format('%d-%d', minMs, minSeq + 1))
end
return limit - redis.call('XLEN', stream)
`;

/**
 * Appends entries to one stream, in order. ARGV starts with the number of fields an entry has,
 * then for each field its name, "1" and its value when every entry has the same, or "0" and ""
 * when it varies; then, entry after entry, the values of the varying fields. One command for a
 * whole batch, with the fixed fields once: as a pipeline of one XADD an entry, the relay's
 * process spent about as much CPU building and answering a thousand commands as the write that
 * produced the events (README "Performance", cost of the outbound events).
 */
const APPEND_SCRIPT = `
local fields = tonumber(ARGV[1])
local args = {}
local varying = {}
for f = 1, fields do
  local at = 2 + (f - 1) * 3
  args[2 * f - 1] = ARGV[at]
  if ARGV[at + 1] == '1' then
    args[2 * f] = ARGV[at + 2]
  else
    varying[#varying + 1] = 2 * f
  end
end
local i = 2 + fields * 3
local n = #ARGV
while i <= n do
  for _, slot in ipairs(varying) do
    args[slot] = ARGV[i]
    i = i + 1
  end
  redis.call('XADD', KEYS[1], '*', unpack(args))
end
return 0
`;

/**
 * A command that has not answered by then counts as an outage: the relay's Postgres transaction
 * waits on it, and must not stay open while Redis hangs.
 */
const COMMAND_TIMEOUT_MS = 10_000;

/** The Redis Streams of the Open edX event bus, as the relay writes them. */
export class EventStreams {
  constructor(private readonly redis: RedisClient) {
    redis.defineCommand('eventStreamRoom', { numberOfKeys: 1, lua: ROOM_SCRIPT });
    redis.defineCommand('eventStreamAppend', { numberOfKeys: 1, lua: APPEND_SCRIPT });
  }

  /** How many entries `stream` may still take (trimming what every group has been delivered first). */
  async room(stream: string, limit: number): Promise<number> {
    const redis = this.redis as RedisClient & { eventStreamRoom(key: string, limit: number): Promise<number> };
    return this.guard(() => redis.eventStreamRoom(stream, limit));
  }

  /**
   * Appends to `stream`, in order, one entry for each list of values: `template`'s fields, with
   * its values where it has one, and the list's values, in order, where it has null.
   * One script call (one round trip, and one command for Redis to parse and answer). Throws,
   * having possibly written some of them, when it failed: the caller publishes them again.
   */
  async append(
    stream: string,
    template: ReadonlyArray<readonly [field: string, value: string | null]>,
    entries: ReadonlyArray<ReadonlyArray<string | Buffer>>,
  ): Promise<void> {
    if (entries.length === 0) return;
    const redis = this.redis as RedisClient & {
      eventStreamAppend(key: string, ...args: Array<string | number | Buffer>): Promise<number>;
    };
    const args: Array<string | number | Buffer> = [template.length];
    for (const [field, value] of template) args.push(field, value === null ? '0' : '1', value ?? '');
    for (const values of entries) for (const value of values) args.push(value);
    await this.guard(() => redis.eventStreamAppend(stream, ...args));
  }

  private async guard<T>(command: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([command(), timeout]);
    } catch (err) {
      throw new EventBusUnavailableError(err instanceof Error ? err.message : String(err));
    } finally {
      clearTimeout(timer);
    }
  }
}
