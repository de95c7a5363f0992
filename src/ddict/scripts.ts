/**
 * The Lua scripts a DDict's writes run in its shards. Every write goes through one, so that a
 * frozen dictionary (`${id}:#frozen` set on the shard) refuses writes from every client, whatever
 * that client believes: the check and the write are one atomic step in the server. The scripts
 * are sent by their SHA1 (EVALSHA: the value is the only large argument) and loaded once when a
 * server answers NOSCRIPT (a new or restarted server).
 *
 * Checkpointed writes (checkpoint > 0) also keep, per key, `${id}:#m:<keyText>` = the newest
 * checkpoint the key was written at (so retiring old versions needs no scan), and per shard
 * `${id}:#newest` (for advance()). A write at checkpoint 0 (the default) does neither; it only
 * reads the marker, to refuse a write at a checkpoint 0 the key's working set has left.
 */
import { createHash } from 'node:crypto'
import type { Commands } from './connection.js'

/** Error words our scripts answer with (the first word of the reply error). */
export const FROZEN_REPLY = 'TSFLOW_FROZEN'
export const RETIRED_REPLY = 'TSFLOW_RETIRED'

const FROZEN_CHECK = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('${FROZEN_REPLY} the dictionary is frozen') end\n`

// Moves the key's newest-checkpoint marker to c and deletes the versions that fall out of the
// working set [c - wss + 1, c]. Existing versions lie in [m - wss + 1, m] (m: the marker; a
// version 0 written by a checkpoint-0 handle is the one exception, deleted explicitly), so at most
// wss deletions. KEYS[2] = #newest, KEYS[4] = the marker; ARGV[2] = c, ARGV[3] = wss, ARGV[4] = the
// prefix `${id}:`, ARGV[5] = keyText.
const VERSIONED = `
local c = tonumber(ARGV[2])
local wss = tonumber(ARGV[3])
local m = tonumber(redis.call('GET', KEYS[4]) or '0')
if c < m - wss + 1 then return redis.error_reply('${RETIRED_REPLY} ' .. m) end
local function advance()
  if c <= m then return end
  redis.call('SET', KEYS[4], c)
  local hi = math.min(c - wss, m)
  for j = math.max(1, m - wss + 1), hi do redis.call('UNLINK', ARGV[4] .. j .. ':' .. ARGV[5]) end
  if c - wss >= 0 then redis.call('UNLINK', ARGV[4] .. '0:' .. ARGV[5]) end
  if c > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], c) end
end
`

// A write at checkpoint 0 by a handle left behind: refused (as DragonHPC's checkpoint-retired
// error) once another handle wrote the key at a checkpoint whose working set no longer holds 0,
// rather than writing a version no later read sees. One GET of the marker (usually missing).
// KEYS[3] = the marker, ARGV[2] = wss.
const RETIRED_AT_0 = `local m0 = tonumber(redis.call('GET', KEYS[3]) or '0')
if m0 >= tonumber(ARGV[2]) then return redis.error_reply('${RETIRED_REPLY} ' .. m0) end
`

// A large value is not passed to a script: copying megabytes into Lua and back costs several
// times the SET itself. It is SET under a staging key (with a TTL, in case its writer dies before
// the next command), and the script moves it into place with RENAME (no copy). Both commands are
// sent together: one round trip. KEYS[#KEYS] is the staging key.
const STAGED_FROZEN_CHECK = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('UNLINK', KEYS[#KEYS]) return redis.error_reply('${FROZEN_REPLY} the dictionary is frozen') end\n`
const MOVE_STAGED = (target: string) => `redis.call('RENAME', KEYS[#KEYS], ${target})\nredis.call('PERSIST', ${target})\n`

export const SCRIPTS = {
  /** checkpoint 0: KEYS frozen, key, marker; ARGV value, wss */
  set: FROZEN_CHECK + RETIRED_AT_0 + `return redis.call('SET', KEYS[2], ARGV[1])`,
  /** checkpoint 0, a staged value: KEYS frozen, key, marker, staging; ARGV (unused), wss */
  stagedSet: STAGED_FROZEN_CHECK + RETIRED_AT_0.replace('return redis.error_reply', 'redis.call(\'UNLINK\', KEYS[#KEYS]) return redis.error_reply') + MOVE_STAGED('KEYS[2]') + `return 'OK'`,
  /** checkpoint c > 0: KEYS frozen, newest, key@c, marker; ARGV value, c, wss, prefix, keyText */
  vset: FROZEN_CHECK + VERSIONED + `redis.call('SET', KEYS[3], ARGV[1])\nadvance()\nreturn 'OK'`,
  /** checkpoint c > 0, a staged value: KEYS frozen, newest, key@c, marker, staging; ARGV (unused), c, wss, prefix, keyText */
  stagedVset:
    STAGED_FROZEN_CHECK +
    VERSIONED.replace(`return redis.error_reply('${RETIRED_REPLY}`, `redis.call('UNLINK', KEYS[#KEYS]) return redis.error_reply('${RETIRED_REPLY}`) +
    MOVE_STAGED('KEYS[3]') +
    `advance()\nreturn 'OK'`,
  /** checkpoint 0: KEYS frozen, key, marker; ARGV n, wss -> the value after adding */
  incr: FROZEN_CHECK + RETIRED_AT_0 + `return redis.call('INCRBY', KEYS[2], ARGV[1])`,
  /**
   * checkpoint c > 0: KEYS frozen, newest, key@c, marker, older versions (newest first); ARGV
   * n, c, wss, prefix, keyText. A key visible only at an older checkpoint starts from that value.
   */
  vincr:
    FROZEN_CHECK +
    VERSIONED +
    `if redis.call('EXISTS', KEYS[3]) == 0 then
  for i = 5, #KEYS do
    local v = redis.call('GET', KEYS[i])
    if v then redis.call('SET', KEYS[3], v) break end
  end
end
local r = redis.call('INCRBY', KEYS[3], ARGV[1])
advance()
return r`,
  /** KEYS frozen, versions: deletes them all -> how many existed */
  del: FROZEN_CHECK + `local n = 0\nfor i = 2, #KEYS do n = n + redis.call('UNLINK', KEYS[i]) end\nreturn n`,
  /** KEYS frozen, versions newest first: the newest value (nil if none), all versions deleted */
  pop:
    FROZEN_CHECK +
    `local v = false
for i = 2, #KEYS do
  v = redis.call('GET', KEYS[i])
  if v then break end
end
if not v then return nil end
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
return v`,
  /** KEYS versions newest first: the first value found (a read: runs on replicas too) */
  vget: `for i = 1, #KEYS do\n  local v = redis.call('GET', KEYS[i])\n  if v then return v end\nend\nreturn nil`,
  /** KEYS versions newest first, per key: ARGV = how many versions each key has; one value (or nil) per key */
  vgetMany: `local out = {}
local k = 1
for j = 1, #ARGV do
  local found = false
  for i = k, k + tonumber(ARGV[j]) - 1 do
    if not found then
      local v = redis.call('GET', KEYS[i])
      if v then found = v end
    end
  end
  out[j] = found
  k = k + tonumber(ARGV[j])
end
return out`,
  /** KEYS frozen, keys: UNLINK of a batch (clear) unless frozen -> how many */
  unlinkMany: FROZEN_CHECK + `local n = 0\nfor i = 2, #KEYS do n = n + redis.call('UNLINK', KEYS[i]) end\nreturn n`,
} as const

export type ScriptName = keyof typeof SCRIPTS

const SHAS = Object.fromEntries(Object.entries(SCRIPTS).map(([name, body]) => [name, createHash('sha1').update(body).digest('hex')])) as Record<ScriptName, string>

/** EVALSHA of a script (loaded and retried once when the server does not know it yet). */
export async function evalScript<T>(commands: Commands, name: ScriptName, keys: readonly string[], args: readonly (string | Buffer)[]): Promise<T> {
  const tail = [String(keys.length), ...keys, ...args]
  try {
    return await commands.sendCommand<T>(['EVALSHA', SHAS[name], ...tail])
  } catch (error) {
    if (!/^NOSCRIPT/.test((error as Error).message)) throw error
    await commands.sendCommand(['SCRIPT', 'LOAD', SCRIPTS[name]])
    return await commands.sendCommand<T>(['EVALSHA', SHAS[name], ...tail])
  }
}
