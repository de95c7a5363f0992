// A full shard refuses puts with DDictFull (nothing evicted); an existing deployment that would
// evict is switched to noeviction, or refused when it does not allow that.
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { redisMissing } from '../../helpers/redis.js'
import { addresses, failureOf, raw, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

for (const [label, size] of [
  ['small values (through the write script)', 16 * 1024],
  ['large values (staged)', 256 * 1024],
] as const) {
  t.test(`a full shard refuses puts of ${label} and evicts nothing`, { skip }, async (t) => {
    const servers = await startShards(t, 1, ['--maxmemory', '4mb'])
    const dict = await DDict.create({ addresses: addresses(servers), name: 'full' })
    t.teardown(() => dict.destroy().catch(() => {}))
    const value = new Uint8Array(size).fill(3)
    let stored = 0
    let refusal: (Error & { code?: string; [k: string]: unknown }) | undefined
    for (let i = 0; i < 1000 && !refusal; i++) {
      try {
        await dict.set(`k${i}`, value)
        stored++
      } catch (error) {
        refusal = error as Error & { code?: string; [k: string]: unknown }
      }
    }
    t.ok(refusal, 'a put was refused before 1000 puts')
    t.equal(refusal!.code, ErrorCode.DDICT_FULL)
    t.equal(refusal!.shard, 0)
    t.equal(refusal!.address, `${servers[0]!.host}:${servers[0]!.port}`)
    t.equal(refusal!.limitBytes, 4 * 1024 * 1024)
    t.ok((refusal!.usedBytes as number) > 3 * 1024 * 1024, `used bytes reported (${refusal!.usedBytes})`)
    t.match(refusal!.message, new RegExp(`ddict full: shard 0 \\(127\\.0\\.0\\.1:${servers[0]!.port}\\) is full \\(\\d+ of 4194304 bytes used\\), put of key "k${stored}" refused`))
    t.ok(stored > 3, `some puts went in first (${stored})`)
    // nothing evicted: every put that succeeded is still there
    t.equal(await dict.length(), stored)
    const back = await dict.getMany(Array.from({ length: stored }, (_, i) => `k${i}`))
    t.ok(back.every((v) => (v as Uint8Array).length === size), 'every stored value is still whole')
    const info = String(await (await raw(t, servers[0]!)).send(['INFO', 'stats']))
    t.match(info, /evicted_keys:0\r?\n/)
    // A batch that cannot fit is refused too. (Not "any put after a refusal": Redis checks its
    // memory before each command, and the refused put's own argument, counted while it waited in
    // the connection's buffer, is freed by the refusal, so a small next put may fit again.)
    const tooMuch = Array.from({ length: Math.ceil((8 * 1024 * 1024) / size) }, (_, i): [string, Uint8Array] => [`m${i}`, value])
    t.equal((await failureOf(dict.setMany(tooMuch), 'setMany of 8 MB into a full 4 MB shard')).code, ErrorCode.DDICT_FULL)
    // deleting makes room again
    await dict.clear()
    await dict.set('again', value)
    t.equal(((await dict.get('again')) as Uint8Array).length, size)
  })
}

t.test('an existing server that evicts is switched to noeviction', { skip }, async (t) => {
  const servers = await startShards(t, 1, ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'])
  const client = await raw(t, servers[0]!)
  t.match(String(Object.values((await client.send(['CONFIG', 'GET', 'maxmemory-policy'])) as object)), /allkeys-lru/)
  const dict = await DDict.create({ addresses: addresses(servers) })
  t.teardown(() => dict.destroy().catch(() => {}))
  t.match(String(Object.values((await client.send(['CONFIG', 'GET', 'maxmemory-policy'])) as object)), /noeviction/)
  t.equal(dict.descriptor().shards[0]!.maxmemory, 64 * 1024 * 1024, 'its maxmemory is in the descriptor')
})

t.test('an existing server that evicts and refuses CONFIG SET is refused, naming its address', { skip }, async (t) => {
  const servers = await startShards(t, 1, ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru', '--rename-command', 'CONFIG', ''], '')
  const error = await failureOf(DDict.create({ addresses: [`${servers[0]!.host}:${servers[0]!.port}`] }), 'create on an evicting server')
  t.equal(error.code, ErrorCode.CONFIG)
  t.match(error.message, new RegExp(`ddict\\.addresses\\[0\\] names 127\\.0\\.0\\.1:${servers[0]!.port}, whose maxmemory-policy is allkeys-lru`))
})

t.test('a server that does not allow CONFIG and does not evict is used; waitFor polls it', { skip }, async (t) => {
  const servers = await startShards(t, 1, ['--rename-command', 'CONFIG', ''], '')
  const dict = await DDict.create({ addresses: [`${servers[0]!.host}:${servers[0]!.port}`] })
  t.teardown(() => dict.destroy().catch(() => {}))
  const other = DDict.attach(dict.descriptor())
  const waiting = dict.waitFor('late', { timeoutMs: 20_000 })
  setTimeout(() => void other.set('late', 'polled'), 100)
  t.equal(await waiting, 'polled')
})
