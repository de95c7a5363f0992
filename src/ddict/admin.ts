/**
 * The operations of a DDict over all its shards that are not about one key: clear, freeze,
 * the newest checkpoint, stats, destroy.
 */
import { metaKeys } from '../protocol/ddict.js'
import { globEscape, scanKeys, scanNames } from './keys.js'
import { evalScript } from './scripts.js'
import { closeShared, markDestroyed, type Shared } from './shared.js'

/** Keys per UNLINK batch of clear()/destroy(): small enough that the server never stalls on one. */
const UNLINK_BATCH = 500

export interface ShardStats {
  index: number
  /** host:port */
  address: string
  node: string
  /** keys of this dictionary visible at the handle's checkpoint */
  keys: number
  /** the server's used_memory (all of its data, other dictionaries included) */
  usedBytes: number
  /** its maxmemory (0: none) */
  limitBytes: number
  replicas: string[]
}

/** Every key of the dictionary on `shards` except the frozen flag, UNLINKed in batches (refused while frozen). */
export async function clearDict(shared: Shared, shards: number[], checkpoint: number): Promise<void> {
  const meta = metaKeys(shared.id)
  // As DragonHPC's clear: what a handle at `checkpoint` sees goes, writes other handles already
  // made at later checkpoints stay (with the bookkeeping they need). When no checkpoint after
  // this handle's was written (the usual case), everything of the dictionary goes.
  const everything = checkpoint >= (await newestCheckpoint(shared))
  const prefix = `${shared.id}:`
  const doomedName = (name: string): boolean => {
    if (name === meta.frozen) return false
    if (everything) return true
    const rest = name.slice(prefix.length)
    const at = Number(rest.slice(0, rest.indexOf(':')))
    return /^[0-9]/.test(rest) && at <= checkpoint
  }
  await Promise.all(
    shards.map(async (index) => {
      const link = shared.links[index]!
      for await (const names of scanNames(link.primary, `${globEscape(shared.id)}:*`, 'clear')) {
        const doomed = names.filter(doomedName)
        for (let i = 0; i < doomed.length; i += UNLINK_BATCH) {
          const batch = doomed.slice(i, i + UNLINK_BATCH)
          await link.call('clear', '(every key)', (cm) => evalScript(cm, 'unlinkMany', [meta.frozen, ...batch], []))
        }
      }
    }),
  )
}

export async function freezeDict(shared: Shared): Promise<void> {
  const { frozen } = metaKeys(shared.id)
  await Promise.all(
    shared.links.map(async (link) => {
      await link.call('freeze', '(the frozen flag)', (cm) => cm.sendCommand(['SET', frozen, '1']))
      // Replicas serve the frozen dictionary's reads: they must hold everything written before.
      if (link.replicas.length > 0) {
        await link.call('freeze (WAIT for replicas)', '(the frozen flag)', (cm) => cm.sendCommand(['WAIT', String(link.replicas.length), String(shared.context.timeoutMs)]))
      }
    }),
  )
  shared.frozen = true
}

export async function unfreezeDict(shared: Shared): Promise<void> {
  const { frozen } = metaKeys(shared.id)
  shared.frozen = false
  await Promise.all(shared.links.map((link) => link.call('unfreeze', '(the frozen flag)', (cm) => cm.sendCommand(['DEL', frozen]))))
}

export async function isFrozenDict(shared: Shared): Promise<boolean> {
  const { frozen } = metaKeys(shared.id)
  const answers = await Promise.all(shared.links.map((link) => link.call('isFrozen', '(the frozen flag)', (cm) => cm.sendCommand<number>(['EXISTS', frozen]))))
  return (shared.frozen = answers.some((n) => n > 0))
}

/** The newest checkpoint any client wrote (max over the shards' `${id}:#newest`; 0 when none). */
export async function newestCheckpoint(shared: Shared): Promise<number> {
  const { newest } = metaKeys(shared.id)
  const answers = await Promise.all(shared.links.map((link) => link.call('newest checkpoint', '(the newest checkpoint)', (cm) => cm.sendCommand<Buffer | null>(['GET', newest]))))
  return answers.reduce((max, reply) => Math.max(max, reply === null ? 0 : Number(reply.toString('latin1'))), 0)
}

export async function shardStats(shared: Shared, checkpoint: number, shards: number[]): Promise<ShardStats[]> {
  return Promise.all(
    shards.map(async (index) => {
      const link = shared.links[index]!
      const [memory, keys] = await Promise.all([
        link.memory(),
        (async () => {
          let n = 0
          for await (const page of scanKeys(link.primary, shared.id, checkpoint, shared.base.workingSetSize)) n += page.length
          return n
        })(),
      ])
      const info = shared.base.shards[index]!
      return { index, address: link.address, node: info.node, keys, usedBytes: memory.used, limitBytes: memory.limit, replicas: link.replicas.map((r) => r.label) }
    }),
  )
}

/**
 * Servers this process started are stopped; otherwise (an existing deployment, or a handle that
 * did not start them) the dictionary's keys are deleted. Every handle in this process is then destroyed.
 */
export async function destroyDict(shared: Shared): Promise<void> {
  const group = shared.group
  if (group) {
    markDestroyed(shared)
    await closeShared(shared)
    await group.stop()
    return
  }
  await Promise.all(
    shared.links.map(async (link) => {
      for await (const names of scanNames(link.primary, `${globEscape(shared.id)}:*`, 'destroy')) {
        for (let i = 0; i < names.length; i += UNLINK_BATCH) {
          const batch = names.slice(i, i + UNLINK_BATCH)
          await link.call('destroy', '(every key)', (cm) => cm.sendCommand(['UNLINK', ...batch]))
        }
      }
    }),
  )
  markDestroyed(shared)
  await closeShared(shared)
}
