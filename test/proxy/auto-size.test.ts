// How the executor proxy option decides "larger than the threshold": the bounds walk must agree
// with the real encoded size on every value, decided without encoding where it can.
import t from 'tap'
import * as tsflow from 'tsflow'
import * as proxyModule from 'tsflow/proxy'

const { largerThan } = await import('../../dist/proxy/auto.js')
const { encode } = await import('../../dist/serialize/codec.js')
const { parseSize, formatSize, sizeBytes } = await import('../../dist/util/size.js')

t.test('largerThan agrees with the encoded size', async (t) => {
  const shared = { x: new Float64Array(100) }
  const cyclic: Record<string, unknown> = { name: 'loop' }
  cyclic.self = cyclic
  const values: unknown[] = [
    0,
    1.5,
    -(2n ** 70n),
    true,
    undefined,
    null,
    '',
    'ascii text',
    'héé€😀'.repeat(50),
    new Float64Array(1000),
    new Uint8Array(5000),
    Buffer.alloc(3000),
    new ArrayBuffer(2000),
    [1, 2, 3],
    Array.from({ length: 5000 }, (_, i) => i),
    Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}` })),
    { a: 1, b: 'two', c: [3], d: { e: new Int32Array(10) } },
    [shared, shared, shared],
    cyclic,
    new Map([
      [1, 'one'],
      [2, 'two'],
    ]),
    new Set(['a', 'b']),
    new Date(0),
    new Error('an error'),
    /regexp/g,
    new Array(20),
    Object.create(null),
  ]
  for (const value of values) {
    const size = encode(value).byteLength
    for (const threshold of [0, 1, 8, size - 1, size, size + 1, 1000, 10_000, 100_000]) {
      if (threshold < 0) continue
      const decided = largerThan(value, threshold)
      t.equal(decided !== false, size > threshold, `${Object.prototype.toString.call(value)} of ${size} bytes vs threshold ${threshold}`)
      if (decided instanceof Uint8Array) t.equal(decided.byteLength, size, 'the encoded bytes it made are the real ones')
    }
  }
})

t.test('a large typed array or string is decided without encoding it', async (t) => {
  t.equal(largerThan(new Float64Array(1_000_000), 1_000_000), true, 'true, not bytes: no encode')
  t.equal(largerThan('x'.repeat(2_000_000), 1_000_000), true)
  t.equal(largerThan({ rows: [new Float64Array(200_000)] }, 1_000_000), true)
  t.equal(largerThan([1, 'two', { three: 3 }], 1_000_000), false, 'a small value is decided without encoding too')
})

t.test('human sizes', async (t) => {
  t.equal(parseSize('1MB'), 1_000_000)
  t.equal(parseSize('1.5 GB'), 1_500_000_000)
  t.equal(parseSize('64KiB'), 65_536)
  t.equal(parseSize('10mb'), 10_000_000)
  t.equal(parseSize('512'), 512)
  t.equal(parseSize('100B'), 100)
  t.equal(parseSize('2 k'), 2000)
  t.equal(parseSize('1 parsec'), undefined)
  t.equal(parseSize('-1MB'), undefined)
  t.equal(parseSize(''), undefined)
  t.equal(formatSize(1_000_000), '1MB')
  t.equal(formatSize(1536), '1.54kB')
  t.equal(formatSize(12), '12B')
  t.equal(sizeBytes('100kB', 'x'), 100_000)
  t.equal(sizeBytes(0, 'x'), 0)
  t.throws(() => sizeBytes(1.5, 'opt.size'), /opt\.size must be a size in bytes/)
  t.throws(() => sizeBytes('lots', 'opt.size'), /opt\.size must be a size in bytes.*"lots"/)
})

t.test('the proxy API is exported from tsflow too, as the proxy namespace plus the classes', async (t) => {
  t.same(Object.keys(tsflow.proxy).sort(), Object.keys(proxyModule).sort(), 'tsflow.proxy is tsflow/proxy')
  t.equal(tsflow.Store, proxyModule.Store)
  t.equal(tsflow.FileConnector, proxyModule.FileConnector)
  t.equal(tsflow.LocalConnector, proxyModule.LocalConnector)
  t.equal(tsflow.ProxyFuture, proxyModule.ProxyFuture)
  t.equal(tsflow.RedisConnector, proxyModule.RedisConnector)
  t.equal(tsflow.ShmConnector, proxyModule.ShmConnector)
  t.equal(tsflow.MultiConnector, proxyModule.MultiConnector)
  t.equal(tsflow.ZmqConnector, proxyModule.ZmqConnector)
  t.equal(tsflow.proxy.resolve, proxyModule.resolve)
})
