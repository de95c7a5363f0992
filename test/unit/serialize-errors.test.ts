import t from 'tap'
import { readFileSync } from 'node:fs'
import { decodeError, encodeError, type EncodedError } from '../../dist/serialize/errors.js'
import { decode, encode } from '../../dist/serialize/codec.js'
import { ConfigError, TsflowError, WalltimeExceeded } from 'tsflow'

/** What a worker does: encode the error, send it through the binary codec, rebuild it. */
function roundTrip(error: unknown): Error {
  return decodeError(decode<EncodedError>(encode(encodeError(error))))
}

t.test('name, message, stack and code survive', async (t) => {
  const original = Object.assign(new Error('disk on fire'), { code: 'EFIRE' })
  const copy = roundTrip(original)
  t.not(copy, original)
  t.ok(copy instanceof Error)
  t.equal(copy.name, 'Error')
  t.equal(copy.message, 'disk on fire')
  t.equal(copy.stack, original.stack, 'the remote stack is kept, not replaced by the local one')
  t.equal((copy as Error & { code: string }).code, 'EFIRE')
})

t.test('custom error classes keep their name', async (t) => {
  class HttpError extends Error {
    override name = 'HttpError'
    status = 404
  }
  const copy = roundTrip(new HttpError('not found'))
  t.equal(copy.name, 'HttpError')
  t.equal(copy.message, 'not found')
  t.equal((copy as Error & { status: number }).status, 404, 'own props survive')
  t.match(String(copy), /^HttpError: not found/)
  t.notOk(copy instanceof TsflowError, 'a user error is not a tsflow error')
})

t.test('built-in classes are rebuilt as those classes', async (t) => {
  const builtins = [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]
  for (const Ctor of builtins) {
    const copy = roundTrip(new Ctor(`a ${Ctor.name}`))
    t.ok(copy instanceof Ctor, `${Ctor.name} is rebuilt as ${Ctor.name}`)
    t.equal(copy.name, Ctor.name)
    t.equal(copy.message, `a ${Ctor.name}`)
  }
  const plain = roundTrip(new Error('plain'))
  t.equal(Object.getPrototypeOf(plain), Error.prototype, 'Error is rebuilt as Error')
})

t.test('own plain props survive; non-plain ones are dropped without failing', async (t) => {
  const error = Object.assign(new Error('with props'), {
    exitCode: 3,
    host: 'node7',
    retryable: false,
    nothing: null,
    big: 12345678901234567890n,
    nested: { list: [1, 'two', { three: 3 }], deep: { a: { b: 1 } } },
    when: new Date(0),
    handler: () => 1,
    socket: new (class Socket {})(),
  })
  const encoded = encodeError(error)
  t.doesNotThrow(() => encode(encoded), 'the encoded error is always codec-safe')
  const copy = roundTrip(error) as unknown as Record<string, unknown>
  t.equal(copy.exitCode, 3)
  t.equal(copy.host, 'node7')
  t.equal(copy.retryable, false)
  t.equal(copy.nothing, null)
  t.equal(copy.big, '12345678901234567890', 'BigInt props become strings')
  t.same(copy.nested, { list: [1, 'two', { three: 3 }], deep: { a: { b: 1 } } })
  t.notOk('handler' in copy, 'functions are dropped')
  t.notOk('socket' in copy, 'class instances are dropped')
  t.notOk('when' in copy, 'Dates are dropped')
})

t.test('Node system errors keep code, errno, syscall and path', async (t) => {
  let caught: unknown
  try {
    readFileSync('/nonexistent-dir-for-tsflow-test/file.txt')
  } catch (error) {
    caught = error
  }
  const copy = roundTrip(caught) as Error & { code: string; errno: number; syscall: string; path: string }
  t.equal(copy.code, 'ENOENT')
  t.equal(copy.errno, (caught as { errno: number }).errno)
  t.equal(copy.syscall, 'open')
  t.equal(copy.path, '/nonexistent-dir-for-tsflow-test/file.txt')
  t.match(copy.message, /ENOENT/)
})

t.test('numeric code survives', async (t) => {
  const copy = roundTrip(Object.assign(new Error('x'), { code: 42 })) as Error & { code: unknown }
  t.equal(copy.code, 42, 'code 42 arrives')
})

t.test('cause chain survives', async (t) => {
  const root = new RangeError('root cause')
  const middle = new Error('middle', { cause: root })
  const top = new TypeError('top', { cause: middle })
  const copy = roundTrip(top)
  t.ok(copy instanceof TypeError)
  const copyMiddle = copy.cause as Error
  t.ok(copyMiddle instanceof Error)
  t.equal(copyMiddle.message, 'middle')
  const copyRoot = copyMiddle.cause as Error
  t.ok(copyRoot instanceof RangeError)
  t.equal(copyRoot.message, 'root cause')
  t.equal(copyRoot.stack, root.stack)
  t.equal(copyRoot.cause, undefined)

  t.equal(roundTrip(new Error('x', { cause: 'a reason' })).cause, 'a reason', 'a string cause is kept')
  t.same(roundTrip(new Error('x', { cause: { status: 500 } })).cause, { status: 500 }, 'a plain object cause is kept')
  t.equal(roundTrip(new Error('x', { cause: 0 })).cause, 0, 'a falsy cause is kept')
  t.equal(roundTrip(new Error('x', { cause: null })).cause, null, 'a null cause is kept')
  t.notOk('cause' in roundTrip(new Error('x')), 'no cause is invented')
})

t.test('AggregateError members survive', async (t) => {
  const members = [new TypeError('first'), new Error('second', { cause: new RangeError('inner') }), 'third']
  const copy = roundTrip(new AggregateError(members, 'several failed'))
  t.ok(copy instanceof AggregateError, 'rebuilt as AggregateError')
  t.equal(copy.name, 'AggregateError')
  t.equal(copy.message, 'several failed')
  const errors = (copy as AggregateError).errors as Error[]
  t.equal(errors.length, 3)
  t.ok(errors[0] instanceof TypeError)
  t.equal(errors[0]!.message, 'first')
  t.equal(errors[1]!.message, 'second')
  t.ok(errors[1]!.cause instanceof RangeError, 'members keep their causes')
  t.equal(errors[2]!.name, 'NonErrorThrown', 'non-Error members become descriptive errors')
  t.match(errors[2]!.message, /"third"/)
})

t.test('tsflow errors stay tsflow errors', async (t) => {
  const config = new ConfigError('executors[0].maxThreads', 'must be a positive integer (got 0)')
  const encoded = encodeError(config)
  t.equal(encoded.tsflow, true)
  t.equal(encoded.code, 'E_CONFIG')
  const copy = roundTrip(config) as ConfigError
  t.ok(copy instanceof ConfigError)
  t.ok(copy instanceof TsflowError)
  t.notOk(copy instanceof WalltimeExceeded)
  t.equal(copy.path, 'executors[0].maxThreads', 'ConfigError.path survives')
  t.equal(copy.name, 'ConfigError')
  t.equal(copy.code, 'E_CONFIG')
  t.notOk(encodeError(new Error('plain')).tsflow, 'plain errors are not marked')
})

t.test('a thrown non-Error becomes a descriptive error', async (t) => {
  const fromString = roundTrip('something broke')
  t.ok(fromString instanceof Error)
  t.equal(fromString.name, 'NonErrorThrown')
  t.equal(fromString.message, 'a non-Error value was thrown: "something broke"')
  t.equal((fromString as Error & { value: unknown }).value, 'something broke', 'the value is kept')

  const fromObject = roundTrip({ status: 500, reason: 'server' })
  t.equal(fromObject.name, 'NonErrorThrown')
  t.same((fromObject as Error & { value: unknown }).value, { status: 500, reason: 'server' }, 'a plain object is kept as the value')

  for (const [value, text] of [
    [42, '42'],
    [undefined, 'undefined'],
    [null, 'null'],
    [false, 'false'],
    [10n, '10n'],
    [Symbol('tag'), 'Symbol(tag)'],
  ] as const) {
    const copy = roundTrip(value)
    t.equal(copy.name, 'NonErrorThrown')
    t.equal(copy.message, `a non-Error value was thrown: ${text}`, `thrown ${text}`)
  }

  const nullProto = roundTrip(Object.create(null))
  t.equal(nullProto.name, 'NonErrorThrown', 'a value without toString does not break encoding')

  const long = roundTrip('y'.repeat(1000))
  t.ok(long.message.length < 260, 'long values are abbreviated in the message')
})

t.test('the message of a thrown plain object shows its content', async (t) => {
  const copy = roundTrip({ status: 500, reason: 'server' })
  t.notMatch(copy.message, /\[object Object\]/, 'not [object Object]')
  t.match(copy.message, /status/, 'names the fields')
})

t.test('cycles and deep cause chains do not blow up', async (t) => {
  const selfCause = new Error('cyclic')
  selfCause.cause = selfCause
  let copy: Error | undefined
  t.doesNotThrow(() => {
    copy = roundTrip(selfCause)
  }, 'an error that is its own cause encodes')
  t.equal(copy!.message, 'cyclic')

  const a = new Error('a')
  const b = new Error('b', { cause: a })
  a.cause = b
  t.doesNotThrow(() => roundTrip(a), 'a two-error cycle encodes')

  let deep: Error = new Error('level 0')
  for (let i = 1; i <= 1000; i++) deep = new Error(`level ${i}`, { cause: deep })
  const deepCopy = roundTrip(deep)
  let depth = 0
  for (let e: unknown = deepCopy; e instanceof Error; e = e.cause) depth++
  t.ok(depth >= 2 && depth < 20, `a 1000-deep cause chain is cut short (kept ${depth})`)
  t.equal(deepCopy.message, 'level 1000', 'the top of the chain is kept')

  const cyclicProp: Record<string, unknown> = { name: 'loop' }
  cyclicProp.self = cyclicProp
  const withCyclicProp = Object.assign(new Error('props'), { info: cyclicProp })
  t.doesNotThrow(() => roundTrip(withCyclicProp), 'cyclic plain props encode')

  const aggregateLoop = new AggregateError([], 'loop')
  ;(aggregateLoop as { errors: unknown[] }).errors = [aggregateLoop]
  t.doesNotThrow(() => roundTrip(aggregateLoop), 'an AggregateError containing itself encodes')

  const bigArray = Object.assign(new Error('array'), { items: Array.from({ length: 10_000 }, (_, i) => i) })
  const bigCopy = roundTrip(bigArray) as Error & { items: number[] }
  t.ok(bigCopy.items.length <= 100, 'huge arrays in props are capped')
})
