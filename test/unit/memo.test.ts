import t from 'tap'
import { MemoTable, memoKey, sourceDigest } from '../../dist/dataflow/memo.js'
import { AppFuture, type FutureTask } from '../../dist/dataflow/future.js'
import { File } from '../../dist/data/file.js'

const APP = 'file:///work/app.js#double@0123456789abcdef'
const key = (...args: unknown[]): string => memoKey(APP, args, {}, [])

function future(id: number): AppFuture<unknown> {
  const task: FutureTask = { id, appName: 'double', state: 'pending', cancel: () => false }
  return new AppFuture(task)
}

t.test('memoKey is a stable hex digest', async (t) => {
  const first = key(1, 'a', { b: [2] })
  t.match(first, /^[0-9a-f]{64}$/)
  t.equal(key(1, 'a', { b: [2] }), first, 'identical calls give identical keys')
  t.not(memoKey('file:///other.js#double@0123', [1, 'a', { b: [2] }], {}, []), first, 'the app identity is part of the key')
})

t.test('memoKey is stable across object key order', async (t) => {
  t.equal(key({ a: 1, b: 2, c: 3 }), key({ c: 3, a: 1, b: 2 }))
  t.equal(key({ outer: { x: 1, y: [{ p: 1, q: 2 }] } }), key({ outer: { y: [{ q: 2, p: 1 }], x: 1 } }), 'nested objects too')
  t.equal(memoKey(APP, [], { walltime: 5, executors: ['a'] }, []), memoKey(APP, [], { executors: ['a'], walltime: 5 }, []), 'call options too')
  const nullProto = Object.assign(Object.create(null), { a: 1, b: 2 })
  t.equal(key(nullProto), key({ b: 2, a: 1 }), 'null-prototype objects hash like plain objects')
})

t.test('memoKey tells values of different types apart', async (t) => {
  const values: [string, unknown][] = [
    ['1', 1],
    ['"1"', '1'],
    ['[1]', [1]],
    ['{0:1}', { 0: 1 }],
    ['1n', 1n],
    ['true', true],
    ['"true"', 'true'],
    ['null', null],
    ['undefined', undefined],
    ['""', ''],
    ['0', 0],
    ['[]', []],
    ['{}', {}],
    ['new Map()', new Map()],
    ['new Set()', new Set()],
    ['Set[1]', new Set([1])],
    ['Map[1,1]', new Map([[1, 1]])],
    ['Date(1)', new Date(1)],
    ['/1/', /1/],
    ['Uint8Array[1]', new Uint8Array([1])],
    ['Int8Array[1]', new Int8Array([1])],
    ['ArrayBuffer[1]', new Uint8Array([1]).buffer],
    ['File', new File('/1')],
    ['"/1"', '/1'],
    ['[[1]]', [[1]]],
    ['[1,[]]', [1, []]],
    ['[[1],[]]', [[1], []]],
  ]
  const seen = new Map<string, string>()
  for (const [label, value] of values) {
    const k = key(value)
    t.notOk(seen.has(k), `${label} has its own key${seen.has(k) ? ` (same as ${seen.get(k)})` : ''}`)
    seen.set(k, label)
  }
})

t.test('memoKey tells argument lists apart', async (t) => {
  t.not(key(1, 2), key(2, 1), 'order of arguments matters')
  t.not(key(1), key(1, undefined), 'a trailing undefined argument counts')
  t.not(key('a', 'b'), key('ab'), 'two strings are not their concatenation')
  t.not(key('a,b'), key('a', 'b'))
  t.not(key(['a', 'b']), key(['a,b']))
  t.not(key({ 'a=1': 2 }), key({ a: '1=2' }), 'keys and values containing separators do not collide')
  t.not(key({ ab: 'c' }), key({ a: 'bc' }))
  t.not(key('s1:x'), key('s', 'x'))
  t.not(key(1.5), key(15))
  t.not(key(-1), key(1))
  t.not(key(NaN), key(undefined))
  t.equal(key(NaN), key(NaN), 'NaN equals itself here')
  t.not(key({ a: undefined }), key({}), 'an own undefined property counts')
})

t.test('memoKey ignores listed argument indices', async (t) => {
  const ignore = [1]
  t.equal(memoKey(APP, [10, 'verbose', 30], {}, ignore), memoKey(APP, [10, 'quiet', 30], {}, ignore), 'the ignored argument does not count')
  t.not(memoKey(APP, [10, 'verbose', 30], {}, ignore), memoKey(APP, [11, 'verbose', 30], {}, ignore), 'the others still count')
  t.not(memoKey(APP, [10, 'x', 30], {}, ignore), memoKey(APP, [10, 30], {}, ignore), 'positions of the others are kept')
  t.equal(memoKey(APP, [1, new Date()], {}, [1]), memoKey(APP, [1, new Date(0)], {}, [1]))
  t.not(memoKey(APP, [1, 2], {}, ['1']), memoKey(APP, [1, 3], {}, ['1']), "a string '1' does not ignore index 1")
})

t.test('memoKey ignores listed call-option names', async (t) => {
  const withOpts = (opts: Record<string, unknown>, ignore: (number | string)[] = []) => memoKey(APP, [1], opts, ignore)
  t.not(withOpts({ stdout: 'a.txt' }), withOpts({ stdout: 'b.txt' }), 'call options count by default')
  t.equal(withOpts({ stdout: 'a.txt' }, ['stdout']), withOpts({ stdout: 'b.txt' }, ['stdout']), 'an ignored option does not count')
  t.equal(withOpts({ stdout: 'a.txt' }, ['stdout']), withOpts({}, ['stdout']), 'an ignored option may be absent')
  t.not(withOpts({ stdout: 'a', stderr: 'x' }, ['stdout']), withOpts({ stdout: 'a', stderr: 'y' }, ['stdout']), 'others still count')
  t.equal(withOpts({ walltime: undefined }), withOpts({}), 'an undefined option is the same as an absent one')
  t.not(withOpts({}), memoKey(APP, [], { 0: 1 }, []), 'options do not collide with arguments')
})

t.test('memoKey handles Map and Set regardless of insertion order', async (t) => {
  t.equal(
    key(
      new Map<unknown, unknown>([
        ['a', 1],
        ['b', 2],
      ]),
    ),
    key(
      new Map<unknown, unknown>([
        ['b', 2],
        ['a', 1],
      ]),
    ),
  )
  t.not(key(new Map([['a', 1]])), key(new Map([['a', 2]])), 'Map values count')
  t.not(key(new Map([['a', 1]])), key(new Map([['b', 1]])), 'Map keys count')
  t.not(key(new Map([['a', 1]])), key({ a: 1 }), 'a Map is not a plain object')
  t.not(key(new Map([[1, 'x']])), key(new Map([['1', 'x']])), 'Map keys are typed')
  t.equal(key(new Map([[{ id: 1 }, 'x']])), key(new Map([[{ id: 1 }, 'x']])), 'object keys are compared by content')
  t.equal(key(new Set([1, 2, 3])), key(new Set([3, 1, 2])))
  t.not(key(new Set([1, 2])), key(new Set([1, 3])))
  t.not(key(new Set([1, 2])), key([1, 2]), 'a Set is not an array')
  t.not(key(new Set(['1'])), key(new Set([1])))
  t.equal(key(new Set([{ a: 1, b: 2 }])), key(new Set([{ b: 2, a: 1 }])), 'Set items are compared by content')
})

t.test('memoKey handles typed arrays by content and type', async (t) => {
  t.equal(key(new Uint8Array([1, 2, 3])), key(new Uint8Array([1, 2, 3])))
  t.not(key(new Uint8Array([1, 2, 3])), key(new Uint8Array([1, 2, 4])))
  t.not(key(new Uint8Array([0, 0, 0, 0])), key(new Float32Array([0])), 'same bytes, different type')
  const big = Buffer.alloc(4096)
  const a = Buffer.from(big.subarray(100, 110).fill(7))
  const pooled = Buffer.from('\x07'.repeat(10), 'latin1') // a slice of Node's shared pool
  t.equal(key(a), key(pooled), 'only the view bytes count, not the underlying buffer or offset')
  const backing = new Uint8Array([9, 1, 2, 9])
  t.equal(key(backing.subarray(1, 3)), key(new Uint8Array([1, 2])), 'subarrays hash their own bytes')
  t.equal(key(new Float64Array([1.5]).buffer), key(new Float64Array([1.5]).buffer), 'ArrayBuffers by content')
  t.equal(key(new DataView(new ArrayBuffer(2))), key(new DataView(new ArrayBuffer(2))), 'DataView by content')
})

t.test('memoKey handles File, Date and RegExp by value', async (t) => {
  t.equal(key(new File('/data/in.txt')), key(new File('/data/in.txt')))
  t.equal(key(new File('/data/in.txt')), key(new File('file:///data/in.txt')), 'a path and its file URL are the same File')
  t.not(key(new File('/data/in.txt')), key(new File('/data/out.txt')))
  t.not(key(new File('/data/in.txt')), key('/data/in.txt'), 'a File is not its path string')
  t.equal(key({ inputs: [new File('/a')] }), key({ inputs: [new File('/a')] }), 'nested Files')
  t.equal(key(new Date(5)), key(new Date(5)))
  t.not(key(new Date(5)), key(new Date(6)))
  t.equal(key(/a+/g), key(/a+/g))
  t.not(key(/a+/g), key(/a+/i))
})

t.test('memoKey handles cycles and shared references', async (t) => {
  const a: Record<string, unknown> = { name: 'node' }
  a.self = a
  const b: Record<string, unknown> = { name: 'node' }
  b.self = b
  let k = ''
  t.doesNotThrow(() => {
    k = key(a)
  }, 'a cyclic object does not overflow the stack')
  t.equal(k, key(b), 'two structurally equal cycles give the same key')
  const c: Record<string, unknown> = { name: 'other' }
  c.self = c
  t.not(k, key(c))

  const list: unknown[] = [1]
  list.push(list)
  t.doesNotThrow(() => key(list), 'a cyclic array')
  const map = new Map<string, unknown>()
  map.set('me', map)
  t.doesNotThrow(() => key(map), 'a cyclic Map')
  const set = new Set<unknown>()
  set.add(set)
  t.doesNotThrow(() => key(set), 'a cyclic Set')

  const shared = { value: 1 }
  t.equal(key([shared, shared]), key([{ value: 1 }, { value: 1 }]), 'a shared (non-cyclic) object is not taken for a cycle')
  t.not(key([shared, shared]), key([shared, { value: 2 }]))
})

t.test('memoKey handles deep and large inputs', async (t) => {
  let deep: unknown = 'leaf'
  for (let i = 0; i < 1000; i++) deep = { child: deep }
  t.doesNotThrow(() => key(deep), '1000 levels of nesting')
  const large = Array.from({ length: 100_000 }, (_, i) => i)
  t.equal(key(large), key([...large]))
  t.not(key(large), key([...large.slice(0, -1), -1]), 'a change at the end of a large array counts')
})

t.test('sourceDigest follows the function source', async (t) => {
  const f = (x: number) => x + 1
  const g = (x: number) => x + 2
  t.match(sourceDigest(f), /^[0-9a-f]{16}$/)
  t.equal(sourceDigest(f), sourceDigest(f))
  t.not(sourceDigest(f), sourceDigest(g), 'editing the function changes the digest')
})

t.test('MemoTable lookup / started / finished', async (t) => {
  const table = new MemoTable()
  t.equal(table.size, 0)
  t.same(table.lookup('k1'), { hit: false })
  t.notOk('running' in table.lookup('k1'), 'no running future on a miss')

  const f1 = future(1)
  table.started('k1', f1)
  const running = table.lookup('k1')
  t.equal(running.hit, false)
  t.equal((running as { running?: unknown }).running, f1, 'an identical call in flight is returned')
  t.equal(table.size, 0, 'in-flight entries are not counted as results')

  table.finished('k1', f1, true, { answer: 42 })
  t.same(table.lookup('k1'), { hit: true, value: { answer: 42 } })
  t.equal(table.size, 1)

  const f2 = future(2)
  table.started('k2', f2)
  table.finished('k2', f2, true, undefined)
  t.same(table.lookup('k2'), { hit: true, value: undefined }, 'undefined is a result that is remembered')
})

t.test('MemoTable does not remember failures', async (t) => {
  const table = new MemoTable()
  const f = future(1)
  table.started('k', f)
  table.finished('k', f, false, new Error('failed'))
  const after = table.lookup('k')
  t.same(after, { hit: false }, 'the next identical call runs again')
  t.notOk('running' in after, 'the failed future is no longer in flight')
  t.equal(table.size, 0)

  const retry = future(2)
  table.started('k', retry)
  table.finished('k', retry, true, 'second time lucky')
  t.same(table.lookup('k'), { hit: true, value: 'second time lucky' })
})

t.test('MemoTable keeps the newest in-flight future', async (t) => {
  const table = new MemoTable()
  const older = future(1)
  const newer = future(2)
  table.started('k', older)
  table.started('k', newer)
  table.finished('k', older, false, new Error('old failure'))
  t.equal((table.lookup('k') as { running?: unknown }).running, newer, 'an older finish does not drop the newer in-flight call')
  table.finished('k', newer, true, 2)
  t.same(table.lookup('k'), { hit: true, value: 2 })
})

t.test('MemoTable.preload', async (t) => {
  const table = new MemoTable()
  table.preload([
    ['a', 1],
    ['b', { nested: true }],
  ])
  t.equal(table.size, 2)
  t.same(table.lookup('a'), { hit: true, value: 1 })
  t.same(table.lookup('b'), { hit: true, value: { nested: true } })
  t.same(table.lookup('c'), { hit: false })
  table.preload(
    new Map<string, unknown>([
      ['a', 'replaced'],
      ['c', 3],
    ]),
  )
  t.equal(table.size, 3, 'any iterable of entries is accepted')
  t.same(table.lookup('a'), { hit: true, value: 'replaced' }, 'later entries win')
  function* generated(): Generator<[string, unknown]> {
    yield ['g', 'from a generator']
  }
  table.preload(generated())
  t.same(table.lookup('g'), { hit: true, value: 'from a generator' })
})
