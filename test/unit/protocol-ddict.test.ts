// The DDict boundary spec (protocol/ddict.ts): option checks name the option path, addresses
// parse, keys keep their type, and every client hashes a key to the same shard.
import t from 'tap'
import { ConfigError } from 'tsflow'
import {
  DDICT_DEFAULTS,
  ddictShardsSpec,
  isDDictDescriptor,
  keyFromText,
  keyText,
  parseShardAddress,
  redisKey,
  shardOf,
  validateDDictOptions,
} from 'tsflow/protocol'

t.test('options: defaults untouched, sizes parsed, errors name the option path', async (t) => {
  t.same(validateDDictOptions(undefined), {})
  const options = validateDDictOptions({ managersPerNode: 2, totalMem: '2GB', timeoutMs: 5000 })
  t.equal(options.totalMem, 2e9)
  t.equal(options.managersPerNode, 2)
  t.throws(() => validateDDictOptions({ managersPerNode: 0 }), { code: 'E_CONFIG', message: /ddict\.managersPerNode/ })
  t.throws(() => validateDDictOptions({ totalMem: 'lots' }), { message: /ddict\.totalMem must be a size/ })
  t.throws(() => validateDDictOptions({ fullFraction: 1.5 }), { message: /ddict\.fullFraction/ })
  const typo = t.throws(() => validateDDictOptions({ managersPerNod: 2 }))
  t.ok(typo instanceof ConfigError && /managersPerNode/.test(typo.message), `did-you-mean: ${String(typo)}`)
  t.throws(() => validateDDictOptions({ addresses: [] }), { message: /ddict\.addresses must list at least one/ })
  t.throws(() => validateDDictOptions({ addresses: ['h:1'], managersPerNode: 2 }), { message: /ddict\.managersPerNode applies only to servers tsflow starts/ })
  t.throws(() => validateDDictOptions({ provider: { not: 'a provider' } }), { message: /ddict\.provider must be an execution provider/ })
  t.throws(() => validateDDictOptions({ addresses: ['h:1'], provider: { submit() {} } }), { message: /ddict\.provider cannot be given with addresses/ })
  t.throws(() => validateDDictOptions({ addresses: ['nohost'] }, 'dict'), { message: /dict\.addresses\[0\] must be a Redis address/ })
  t.equal(DDICT_DEFAULTS.fullFraction, 0.9)
})

t.test('shard addresses: host:port, redis:// with password, IPv6', async (t) => {
  t.same(parseShardAddress('10.0.0.2:6380', 'a'), { host: '10.0.0.2', port: 6380 })
  t.same(parseShardAddress('redis://:s3cret@node1:7000', 'a'), { host: 'node1', port: 7000, password: 's3cret' })
  t.same(parseShardAddress('redis://[::1]:7000', 'a'), { host: '::1', port: 7000 })
  t.throws(() => parseShardAddress('node1:70000', 'x'), { message: /x must be a Redis address/ })
})

t.test('keys keep their type and hash alike everywhere', async (t) => {
  for (const key of ['sim-1', '', 'ünï', 42, -1.5, 0]) t.same(keyFromText(keyText(key)), key)
  t.not(keyText('1'), keyText(1))
  t.throws(() => keyText(NaN), /finite number/)
  t.throws(() => keyText({} as never), /string or a finite number/)
  t.equal(redisKey('d1', 3, keyText('a')), 'd1:3:sa')
  // a fixed hash (so another implementation can be checked against it) that spreads keys evenly
  t.equal(shardOf('sa', 1), 0)
  t.equal(shardOf(keyText('sim-0'), 1 << 30), shardOf(keyText('sim-0'), 1 << 30))
  const counts = [0, 0, 0, 0]
  for (let i = 0; i < 4000; i++) counts[shardOf(keyText(`sim-${i}`), 4)]!++
  for (const count of counts) t.ok(count > 800 && count < 1200, `shard share ${count} of 4000`)
})

t.test('descriptor shape check and the shard host argv round trip', async (t) => {
  t.notOk(isDDictDescriptor({ v: 1, id: 'x', shards: [] }))
  t.ok(isDDictDescriptor({ v: 1, id: 'x', shards: [{ index: 0 }] }))
  const values = { id: 'd1', report: '10.0.0.1:4000', count: 2, maxmemory: 1_000_000, bind: '0.0.0.0' }
  t.same(ddictShardsSpec.decode(ddictShardsSpec.encode(values)), values)
  t.throws(() => ddictShardsSpec.decode(['--count', '0']), { message: /--count/ })
})
