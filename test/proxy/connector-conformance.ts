// The connector conformance suite: what every Connector must do, whatever keeps its bytes. A
// connector's test file calls connectorConformance(t, { name, create }). Not a test file itself.

import type { Test } from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { connectorFromConfig, type Connector, type ObjectKey } from 'tsflow/proxy'

export interface ConnectorTarget {
  name: string
  /** a fresh connector; the suite closes it (and evicts what it stored) */
  create(): Connector | Promise<Connector>
  /** extra checks that only this connector has (e.g. the file connector's crashed writers) */
  extra?(t: Test, connector: Connector): Promise<void>
}

const bytesOf = (...values: number[]) => Uint8Array.from(values)

export function connectorConformance(t: Test, target: ConnectorTarget): void {
  const open = async (t: Test) => {
    const connector = await target.create()
    t.teardown(() => connector.close())
    return connector
  }

  t.test(`${target.name}: put, get, exists, evict`, async (t) => {
    const c = await open(t)
    const key = await c.put(bytesOf(1, 2, 3))
    t.type(key.id, 'string', 'put returns a key with an id')
    t.ok(await c.exists(key), 'exists after put')
    t.same([...(await c.get(key))], [1, 2, 3], 'get returns the bytes')
    await c.evict(key)
    t.notOk(await c.exists(key), 'gone after evict')
    await c.evict(key) // evicting a missing key is not an error
    const empty = await c.put(new Uint8Array(0))
    t.equal((await c.get(empty)).length, 0, 'an empty object round-trips')
    await c.evict(empty)
  })

  t.test(`${target.name}: getSync, where the connector has it, answers like get`, async (t) => {
    const c = await open(t)
    if (!c.getSync) return t.pass(`${c.type} has no getSync`)
    const key = await c.put(bytesOf(6, 5))
    t.same([...c.getSync(key)], [6, 5])
    await c.evict(key)
    t.throws(() => c.getSync!(key), ObjectNotFound, 'a missing key is ObjectNotFound')
  })

  t.test(`${target.name}: evictSync, where the connector has it, evicts like evict`, async (t) => {
    const c = await open(t)
    if (!c.evictSync) return t.pass(`${c.type} has no evictSync`)
    const key = await c.put(bytesOf(4, 4))
    t.equal(c.evictSync(key), undefined, 'it returns nothing (no promise)')
    t.notOk(await c.exists(key), 'gone after evictSync')
    await t.rejects(c.get(key), ObjectNotFound)
    c.evictSync(key) // evicting a missing key is not an error
  })

  t.test(`${target.name}: put under a given key replaces, and the caller's buffer is not kept`, async (t) => {
    const c = await open(t)
    const key = c.newKey()
    t.notOk(await c.exists(key), 'a new key holds nothing yet')
    const buffer = bytesOf(7, 7)
    t.same(await c.put(buffer, key), key, 'put returns the given key')
    buffer[0] = 9
    t.same([...(await c.get(key))], [7, 7], 'a later change to the buffer does not change the object')
    await c.put(bytesOf(8), key)
    t.same([...(await c.get(key))], [8], 'a second put replaces')
    await c.evict(key)
  })

  t.test(`${target.name}: keys are small plain objects that survive JSON`, async (t) => {
    const c = await open(t)
    const key = await c.put(bytesOf(5))
    const copy = JSON.parse(JSON.stringify(key)) as ObjectKey
    t.same([...(await c.get(copy))], [5], 'a copied key reads the object')
    t.ok(JSON.stringify(key).length < 200, 'the key is small')
    await c.evict(key)
  })

  t.test(`${target.name}: putBatch and getBatch keep order`, async (t) => {
    const c = await open(t)
    const values = Array.from({ length: 20 }, (_, i) => bytesOf(i, i + 1))
    const keys = await c.putBatch(values)
    t.equal(keys.length, 20)
    t.equal(new Set(keys.map((k) => k.id)).size, 20, 'distinct keys')
    const back = await c.getBatch(keys)
    t.same(back.map((b) => [...b]), values.map((v) => [...v]), 'same bytes, same order')
    t.same(await c.getBatch([]), [], 'an empty batch')
    for (const key of keys) await c.evict(key)
  })

  t.test(`${target.name}: a missing key fails with ObjectNotFound naming connector and key`, async (t) => {
    const c = await open(t)
    const key = c.newKey()
    const error = await c.get(key).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ObjectNotFound, 'ObjectNotFound')
    t.equal((error as ObjectNotFound).code, ErrorCode.OBJECT_NOT_FOUND)
    t.notOk(error instanceof ConnectorError, 'not the generic connector error')
    t.match((error as Error).message, c.label, 'names the connector')
    t.match((error as Error).message, key.id, 'names the key')
    const present = await c.put(bytesOf(1))
    await t.rejects(c.getBatch([present, key]), ObjectNotFound, 'a batch with a missing key fails')
    await c.evict(present)
    await t.rejects(c.get(present), ObjectNotFound, 'an evicted key is missing too')
  })

  t.test(`${target.name}: toConfig / fromConfig round trip`, async (t) => {
    const c = await open(t)
    const config = c.toConfig()
    t.equal(config.type, c.type)
    const json = JSON.parse(JSON.stringify(config)) as typeof config
    t.same(json, config, 'the config is plain JSON')
    const rebuilt = connectorFromConfig(json)
    t.teardown(() => rebuilt.close())
    t.equal(rebuilt.type, c.type)
    t.same(rebuilt.toConfig(), config, 'the rebuilt connector has the same config')
    const key = await c.put(bytesOf(4, 2))
    t.same([...(await rebuilt.get(key))], [4, 2], 'the rebuilt connector reads what the original stored')
    await rebuilt.evict(key)
    t.notOk(await c.exists(key), 'and evicts it for both')
    t.throws(() => connectorFromConfig({ type: c.type, bogus: 1 }), { code: ErrorCode.CONFIG }, 'unknown options are refused')
  })

  if (target.extra) t.test(`${target.name}: its own checks`, async (t) => target.extra!(t, await open(t)))
}
