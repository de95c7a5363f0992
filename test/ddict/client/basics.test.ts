// The dict protocol of a DDict on real redis-servers (two shards): every operation, the value
// layout (typed arrays and Buffers raw, not JSON), missing keys, counters, batches.
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { keyText, redisKey, shardOf } from 'tsflow/protocol'
import { redisMissing } from '../../helpers/redis.js'
import { addresses, failureOf, raw, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

t.test('the dict protocol over two shards', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), name: 'basics' })
  t.teardown(() => dict.destroy().catch(() => {}))
  t.equal(dict.shardCount, 2)

  await dict.set('a', 'text')
  await dict.set(7, { nested: [1, 2, { x: true }], when: new Date(5), m: new Map([[1, 'one']]) })
  await dict.set('n', 42)
  await dict.set('f', 1.5)
  await dict.set('u', undefined)
  t.equal(await dict.get('a'), 'text')
  t.same(await dict.get(7), { nested: [1, 2, { x: true }], when: new Date(5), m: new Map([[1, 'one']]) })
  t.equal(await dict.get('n'), 42)
  t.equal(await dict.get('f'), 1.5)
  t.equal(await dict.get('u'), undefined)
  t.equal(await dict.has('a'), true)
  t.equal(await dict.has('7'), false, 'the string "7" is not the number 7')
  t.equal(await dict.has(7), true)

  // missing keys
  const missing = await failureOf(dict.get('nope'), 'get of a missing key')
  t.equal(missing.code, ErrorCode.DDICT_KEY_NOT_FOUND)
  t.match(missing.message, /basics has no key "nope"/)
  t.equal(await dict.get('nope', { default: null }), null)
  t.equal(await dict.get('nope', { default: 3 }), 3)

  // delete and pop
  t.equal(await dict.delete('a'), true)
  t.equal(await dict.delete('a'), false)
  t.equal(await dict.has('a'), false)
  t.equal(await dict.pop('n'), 42)
  t.equal(await dict.has('n'), false)
  t.equal((await failureOf(dict.pop('n'), 'pop of a missing key')).code, ErrorCode.DDICT_KEY_NOT_FOUND)
  t.equal(await dict.pop('n', { default: 'gone' }), 'gone')

  // counters: the value before adding; a missing key counts from 0
  t.equal(await dict.fetchAdd('count', 5), 0)
  t.equal(await dict.fetchAdd('count', -2), 5)
  t.equal(await dict.fetchAdd('count'), 3)
  t.equal(await dict.get('count'), 4)
  await dict.set('int', 10)
  t.equal(await dict.fetchAdd('int', 1), 10, 'a safe integer put with set is a counter')
  const notInt = await failureOf(dict.fetchAdd(7, 1), 'fetchAdd of an object')
  t.equal(notInt.code, ErrorCode.USAGE)
  t.match(notInt.message, /fetchAdd of key 7 needs an integer value/)
  const concurrent = await Promise.all(Array.from({ length: 50 }, () => dict.fetchAdd('race', 1)))
  t.same([...concurrent].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i), 'every add saw a distinct value before it')

  // batches
  await dict.setMany([
    ['b1', 1],
    ['b2', 'two'],
    [3, [3]],
  ])
  await dict.update({ o1: 'x', o2: 'y' })
  await dict.update(new Map<string | number, unknown>([['m1', 1], [99, 'ninety-nine']]))
  t.same(await dict.getMany(['b1', 'b2', 3, 'o1', 'o2', 'm1', 99]), [1, 'two', [3], 'x', 'y', 1, 'ninety-nine'])
  t.equal((await failureOf(dict.getMany(['b1', 'zz']), 'getMany with a missing key')).code, ErrorCode.DDICT_KEY_NOT_FOUND)
  t.same(await dict.getMany(['b1', 'zz'], { default: null }), [1, null])

  // iteration over all shards
  const expected = ['f', 'u', 7, 'count', 'int', 'race', 'b1', 'b2', 3, 'o1', 'o2', 'm1', 99]
  const keys: (string | number)[] = []
  for await (const key of dict.keys()) keys.push(key)
  t.same(new Set(keys), new Set(expected), 'keys() gives back every key with its type')
  t.equal(keys.length, expected.length, 'each key once')
  t.equal(await dict.length(), expected.length)
  const entries = new Map<string | number, unknown>()
  for await (const [key, value] of dict.entries()) entries.set(key, value)
  t.equal(entries.get('b2'), 'two')
  t.equal(entries.get(99), 'ninety-nine')
  t.equal(entries.size, expected.length)
  const values: unknown[] = []
  for await (const value of dict.values()) values.push(value)
  t.equal(values.length, expected.length)
  const onShards = new Set(expected.map((key) => shardOf(keyText(key), 2)))
  t.equal(onShards.size, 2, 'the keys are spread over both shards')

  await dict.clear()
  t.equal(await dict.length(), 0)
  t.equal(await dict.has('b1'), false)
})

t.test('typed arrays and Buffers are stored raw (8-byte header, no JSON) and read back', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers) })
  t.teardown(() => dict.destroy().catch(() => {}))
  const clients = await Promise.all(servers.map((s) => raw(t, s)))
  const storedSize = async (key: string | number) => {
    const text = keyText(key)
    return Number(await clients[shardOf(text, 2)]!.send(['STRLEN', redisKey(dict.id, 0, text)]))
  }

  const samples: [string, ArrayBufferView][] = [
    ['f64', Float64Array.from({ length: 1000 }, (_, i) => i / 3)],
    ['f32', new Float32Array([1.5, -2, 3.25])],
    ['i32', new Int32Array([-1, 2, 2 ** 30])],
    ['u8', new Uint8Array([0, 255, 7])],
    ['i8', new Int8Array([-128, 127])],
    ['u8c', new Uint8ClampedArray([1, 2])],
    ['i16', new Int16Array([-3, 4])],
    ['u16', new Uint16Array([65535])],
    ['u32', new Uint32Array([2 ** 32 - 1])],
    ['i64', new BigInt64Array([-5n, 2n ** 62n])],
    ['u64', new BigUint64Array([2n ** 64n - 1n])],
  ]
  for (const [key, value] of samples) {
    await dict.set(key, value)
    t.equal(await storedSize(key), 8 + value.byteLength, `${key}: 8 bytes of header + the raw data`)
    const back = (await dict.get(key)) as ArrayBufferView
    t.equal(back.constructor, value.constructor, `${key} comes back as a ${value.constructor.name}`)
    t.same(Array.from(back as unknown as ArrayLike<unknown>), Array.from(value as unknown as ArrayLike<unknown>))
  }
  // a view into a larger buffer: only its bytes are stored
  const big = new Float64Array(100).map((_, i) => i)
  await dict.set('view', big.subarray(10, 20))
  t.equal(await storedSize('view'), 8 + 80)
  t.same(Array.from((await dict.get('view')) as Float64Array), Array.from(big.subarray(10, 20)))

  const bytes = Buffer.from('raw bytes \u00ff')
  await dict.set('buf', bytes)
  t.equal(await storedSize('buf'), 8 + bytes.length)
  const got = (await dict.get('buf')) as Buffer
  t.ok(Buffer.isBuffer(got))
  t.ok(got.equals(bytes))

  const view = new DataView(new ArrayBuffer(6))
  view.setUint16(0, 513)
  await dict.set('dv', view)
  const dv = (await dict.get('dv')) as DataView
  t.ok(dv instanceof DataView)
  t.equal(dv.getUint16(0), 513)
  t.equal(dv.byteLength, 6)

  // an integer is ASCII (a Redis counter), anything else the codec after one tag byte
  await dict.set('int', 12345)
  t.equal((await clients[shardOf(keyText('int'), 2)]!.send<Buffer>(['GET', redisKey(dict.id, 0, 'sint')])).toString(), '12345')

  // large values (staged, then moved into place)
  const large = Float64Array.from({ length: 600_000 }, (_, i) => i * 0.5)
  await dict.set('large', large)
  t.equal(await storedSize('large'), 8 + large.byteLength)
  const largeBack = (await dict.get('large')) as Float64Array
  t.equal(largeBack.length, large.length)
  t.equal(largeBack[599_999], 599_999 * 0.5)
  await dict.setMany([
    ['L1', large],
    ['s1', 'small'],
  ])
  t.equal(((await dict.get('L1')) as Float64Array)[12], 6)
  let staging = 0
  for (const client of clients) staging += ((await client.send<Buffer[]>(['KEYS', `${dict.id}:#t:*`])) as unknown[]).length
  t.equal(staging, 0, 'no staging key is left behind')
})

t.test('keys must be strings or finite numbers', { skip }, async (t) => {
  const servers = await startShards(t, 1)
  const dict = await DDict.create({ addresses: addresses(servers) })
  t.teardown(() => dict.destroy().catch(() => {}))
  await t.rejects(dict.set(NaN, 1), /a DDict key must be a string or a finite number \(got NaN\)/)
  await t.rejects(dict.get({} as never), /a DDict key must be a string or a finite number \(got object\)/)
  await dict.set('', 'empty key')
  t.equal(await dict.get(''), 'empty key')
  await dict.set('with:colons:*?[]', 1)
  const keys: unknown[] = []
  for await (const key of dict.keys()) keys.push(key)
  t.same(new Set(keys), new Set(['', 'with:colons:*?[]']))
})
