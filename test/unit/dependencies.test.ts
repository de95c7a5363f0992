import t from 'tap'
import { collectFutures, substituteFutures } from '../../dist/dataflow/dependencies.js'
import { AppFuture, DataFuture, type Future, type FutureTask } from '../../dist/dataflow/future.js'
import { File } from '../../dist/data/file.js'

let nextId = 1
function future<T = unknown>(): AppFuture<T> {
  const task: FutureTask = { id: nextId++, appName: 'app', state: 'pending', cancel: () => false }
  return new AppFuture<T>(task)
}
function resolved<T>(value: T): AppFuture<T> {
  const f = future<T>()
  f.settle(true, value)
  return f
}
function collect(value: unknown): Future<unknown>[] {
  const found: Future<unknown>[] = []
  collectFutures(value, found)
  return found
}

t.test('collectFutures finds futures directly and nested in arrays and plain objects', async (t) => {
  const [a, b, c, d, e] = [future(), future(), future(), future(), future()]
  t.same(collect(a), [a], 'a future on its own')
  const found = collect([a, [b, [c]], { key: d, nested: { deeper: [{ e }] } }])
  t.equal(found.length, 5)
  t.ok(
    [a, b, c, d, e].every((f) => found.includes(f)),
    'every nested future is found',
  )
  t.same(collect([a, { x: b }, [c]]), [a, b, c], 'depth-first, in argument order')
  t.same(collect(Object.assign(Object.create(null), { f: a })), [a], 'null-prototype objects are searched')

  const found2 = collect([a, a, { again: a }])
  t.equal(found2.length, 3, 'a future used several times is reported each time')
})

t.test('collectFutures appends to the given list', async (t) => {
  const a = future()
  const b = future()
  const found: Future<unknown>[] = [a]
  collectFutures({ b }, found)
  t.same(found, [a, b])
})

t.test('collectFutures finds DataFutures', async (t) => {
  const parent = future()
  const data = new DataFuture(parent, new File('/out.txt'))
  t.same(collect({ inputs: [data] }), [data])
})

t.test('collectFutures does not look inside class instances, Maps, Sets or typed arrays', async (t) => {
  const hidden = future()
  class Holder {
    constructor(readonly inner: unknown) {}
  }
  t.same(collect(new Holder(hidden)), [], 'class instance')
  t.same(collect(new Map([['k', hidden]])), [], 'Map value')
  t.same(collect(new Map([[hidden, 'v']])), [], 'Map key')
  t.same(collect(new Set([hidden])), [], 'Set')
  t.same(collect([new Holder(hidden), { h: new Holder(hidden) }]), [], 'class instances nested in arrays/objects')
  t.same(collect(new Uint8Array(4)), [])
  t.same(collect(new Date()), [])
  t.same(collect(new File('/a')), [])
})

t.test('collectFutures ignores primitives', async (t) => {
  for (const value of [undefined, null, 0, 'future', true, 10n, Symbol('s'), () => 1]) {
    t.same(collect(value), [], `${String(value)}`)
  }
})

t.test('substituteFutures replaces futures with their results', async (t) => {
  const a = resolved(1)
  const b = resolved('two')
  const c = resolved({ three: 3 })
  t.equal(substituteFutures(a), 1, 'a future on its own')
  t.same(substituteFutures([a, [b], { c, d: [{ a }] }]), [1, ['two'], { c: { three: 3 }, d: [{ a: 1 }] }])
  const parent = resolved('ignored')
  const file = new File('/out.txt')
  t.equal(substituteFutures(new DataFuture(parent, file)), file, 'a DataFuture becomes its File')
})

t.test('substituteFutures copies without mutating the input', async (t) => {
  const a = resolved(1)
  const inner = { f: a, keep: 'x' }
  const list = [a, inner]
  const input = { list, inner, n: 5 }
  const output = substituteFutures(input) as { list: unknown[]; inner: { f: unknown; keep: string }; n: number }
  t.same(output, { list: [1, { f: 1, keep: 'x' }], inner: { f: 1, keep: 'x' }, n: 5 })
  t.equal(input.list[0], a, 'the input array still holds the future')
  t.equal(inner.f, a, 'the input object still holds the future')
  t.not(output, input, 'a new top-level object')
  t.not(output.list, list, 'a new array')
  t.not(output.inner, inner, 'a new nested object')
  t.same(Object.keys(input), ['list', 'inner', 'n'])
  t.same(substituteFutures(Object.freeze({ f: a, list: Object.freeze([a]) })), { f: 1, list: [1] }, 'frozen inputs work')
})

t.test('substituteFutures passes other values through untouched', async (t) => {
  const hidden = resolved(1)
  const map = new Map([['k', hidden]])
  const set = new Set([hidden])
  const bytes = new Uint8Array([1, 2])
  const date = new Date(0)
  class Holder {
    constructor(readonly inner: unknown) {}
  }
  const holder = new Holder(hidden)
  const output = substituteFutures({ map, set, bytes, date, holder }) as Record<string, unknown>
  t.equal(output.map, map, 'Map is passed by reference')
  t.equal(map.get('k'), hidden, 'and not looked into')
  t.equal(output.set, set)
  t.equal(output.bytes, bytes)
  t.equal(output.date, date)
  t.equal(output.holder, holder)
  for (const value of [undefined, null, 0, 'x', false, 5n]) t.equal(substituteFutures(value), value, `${String(value)}`)
})

t.test('substituteFutures throws the error of a failed future', async (t) => {
  const failure = new RangeError('upstream failed')
  const failed = future()
  failed.settle(false, failure)
  t.throws(() => substituteFutures([resolved(1), { x: failed }]), failure)
})

t.test('substituteFutures keeps an own __proto__ key as data', async (t) => {
  const input = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>
  const output = substituteFutures(input) as Record<string, unknown>
  t.ok(Object.hasOwn(output, '__proto__'), 'the own __proto__ key is copied')
  t.equal(Object.getPrototypeOf(output), Object.prototype, 'the prototype is not replaced')
  t.notOk((output as { polluted?: boolean }).polluted, 'no inherited property appears')
  t.equal(output.x, 1)
})

t.test('cycles: collectFutures terminates, substituteFutures keeps the shape', async (t) => {
  const dep = resolved(7)
  const o: Record<string, unknown> = { name: 'o', dep }
  o.self = o
  o.list = [o, { back: o, dep }]
  const found = collect([o])
  t.ok(found.length >= 1 && found.every((f) => f === dep), 'the future inside the cycle is found')
  const copy = substituteFutures([o]) as [Record<string, unknown>]
  const c = copy[0]
  t.not(c, o, 'a copy')
  t.equal(c.self, c, 'self points at the copy')
  t.equal((c.list as unknown[])[0], c)
  t.equal(((c.list as unknown[])[1] as Record<string, unknown>).back, c)
  t.equal(c.dep, 7, 'futures replaced by results')
  const a: unknown[] = [dep]
  a.push(a)
  const ca = substituteFutures(a) as unknown[]
  t.equal(ca[1], ca)
  t.equal(ca[0], 7)
})
