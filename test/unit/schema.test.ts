import t from 'tap'
import {
  anyOf,
  arrayOf,
  boolean,
  func,
  integer,
  isPlainObject,
  join,
  literal,
  nonNegativeInt,
  number,
  object,
  oneOf,
  optional,
  positiveInt,
  positiveNumber,
  recordOf,
  string,
  type Check,
} from '../../dist/util/schema.js'
import { ConfigError } from 'tsflow'

/** The ConfigError a check throws, or fails the test. */
function configError(check: Check<unknown>, value: unknown, path: string): ConfigError {
  try {
    check(value, path)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error(`expected a ConfigError for ${String(value)} at ${path}`)
}

t.test('join builds option paths', async (t) => {
  t.equal(join('', 'executors'), 'executors')
  t.equal(join('executors', 0), 'executors[0]')
  t.equal(join('executors[0]', 'maxThreads'), 'executors[0].maxThreads')
  t.equal(join('', 0), '[0]')
  t.equal(join('a.b', 'c'), 'a.b.c')
})

t.test('isPlainObject', async (t) => {
  t.ok(isPlainObject({}))
  t.ok(isPlainObject({ a: 1 }))
  t.ok(isPlainObject(Object.create(null)))
  for (const value of [null, undefined, [], new Map(), new Date(), new (class Options {})(), 'x', 1, () => ({})]) {
    t.notOk(isPlainObject(value), `${Object.prototype.toString.call(value)} is not a plain object`)
  }
})

t.test('integer checks', async (t) => {
  t.equal(positiveInt(3, 'n'), 3)
  t.equal(positiveInt(Number.MAX_SAFE_INTEGER, 'n'), Number.MAX_SAFE_INTEGER)
  for (const bad of [0, -1, 1.5, NaN, Infinity, '2', null, undefined, true]) {
    const error = configError(positiveInt, bad, 'executors[0].maxThreads')
    t.match(error.message, /^executors\[0\]\.maxThreads must be a positive integer \(got /, `positiveInt rejects ${String(bad)}`)
    t.equal(error.path, 'executors[0].maxThreads')
  }
  t.equal(configError(positiveInt, 0, 'x').message, 'x must be a positive integer (got 0)')
  t.equal(configError(positiveInt, '2', 'x').message, 'x must be a positive integer (got "2")')

  t.equal(nonNegativeInt(0, 'retries'), 0)
  t.equal(configError(nonNegativeInt, -1, 'retries').message, 'retries must be a non-negative integer (got -1)')

  const range = integer(2, 5)
  t.equal(range(2, 'r'), 2)
  t.equal(range(5, 'r'), 5)
  t.equal(configError(range, 6, 'r').message, 'r must be an integer from 2 to 5 (got 6)')
  t.equal(configError(range, 1, 'r').message, 'r must be an integer from 2 to 5 (got 1)')
  t.equal(configError(integer(1, 65535, 'a port number'), 70000, 'port').message, 'port must be a port number (got 70000)')
})

t.test('number checks', async (t) => {
  const fraction = number(0, 1)
  t.equal(fraction(0.5, 'f'), 0.5)
  t.equal(configError(fraction, 1.5, 'f').message, 'f must be a number from 0 to 1 (got 1.5)')
  t.equal(configError(fraction, NaN, 'f').message, 'f must be a number from 0 to 1 (got NaN)')
  t.equal(configError(number(0, 1, 'a fraction'), 'half', 'f').message, 'f must be a fraction (got "half")')

  t.equal(positiveNumber(0.001, 'p'), 0.001)
  t.equal(positiveNumber(Infinity, 'p'), Infinity, 'Infinity is allowed')
  for (const bad of [0, -1, NaN, -Infinity, '1', null]) {
    t.match(configError(positiveNumber, bad, 'p').message, /^p must be a positive number \(got /, `rejects ${String(bad)}`)
  }
})

t.test('boolean, string, func', async (t) => {
  t.equal(boolean(false, 'b'), false)
  t.equal(configError(boolean, 'yes', 'b').message, 'b must be true or false (got "yes")')
  t.equal(configError(boolean, 0, 'b').message, 'b must be true or false (got 0)')

  t.equal(string('x', 's'), 'x')
  t.equal(configError(string, '', 's').message, 's must be a non-empty string (got "")')
  t.equal(configError(string, 5, 's').message, 's must be a non-empty string (got 5)')

  const fn = () => 1
  t.equal(func(fn, 'f'), fn)
  t.equal(configError(func, 'fn', 'f').message, 'f must be a function (got "fn")')
})

t.test('values are described helpfully in messages', async (t) => {
  t.match(configError(string, null, 'v').message, /\(got null\)$/)
  t.match(configError(string, undefined, 'v').message, /\(got undefined\)$/)
  t.match(configError(string, [1], 'v').message, /\(got an array\)$/)
  t.match(configError(string, { a: 1 }, 'v').message, /\(got an object\)$/)
  t.match(configError(string, () => 1, 'v').message, /\(got a function\)$/)
  t.match(configError(string, 10n, 'v').message, /\(got 10\)$/)
  const long = configError(boolean, 'z'.repeat(200), 'v').message
  t.match(long, /\(got "z{57}\.\.\."\)$/, 'long strings are abbreviated')
})

t.test('oneOf', async (t) => {
  const mode = oneOf('none', 'periodic', 'manual')
  t.equal(mode('periodic', 'checkpointMode'), 'periodic')
  t.equal(
    configError(mode, 'always', 'checkpointMode').message,
    "checkpointMode must be one of 'none', 'periodic', 'manual' (got \"always\")",
  )
  t.match(configError(mode, 1, 'checkpointMode').message, /\(got 1\)$/)
  t.match(configError(mode, 'Periodic', 'checkpointMode').message, /must be one of/, 'matching is case-sensitive')
})

t.test('arrayOf reports element paths', async (t) => {
  const files = arrayOf(string)
  t.same(files(['a', 'b'], 'checkpointFiles'), ['a', 'b'])
  t.same(files([], 'checkpointFiles'), [], 'empty arrays are fine by default')
  t.equal(configError(files, 'a.txt', 'checkpointFiles').message, 'checkpointFiles must be an array (got "a.txt")')
  t.equal(configError(files, ['a', 3], 'checkpointFiles').message, 'checkpointFiles[1] must be a non-empty string (got 3)')
  t.equal(configError(files, ['a', 3], 'checkpointFiles').path, 'checkpointFiles[1]')

  const nonEmpty = arrayOf(positiveInt, { nonEmpty: true })
  t.equal(configError(nonEmpty, [], 'sizes').message, 'sizes must be a non-empty array (got an array)')

  const nested = arrayOf(arrayOf(positiveInt))
  t.equal(configError(nested, [[1], [2, 0]], 'grid').path, 'grid[1][1]', 'nested arrays give nested paths')
})

t.test('recordOf reports key paths', async (t) => {
  const env = recordOf(string)
  t.same(env({ A: 'x', B: 'y' }, 'env'), { A: 'x', B: 'y' })
  t.equal(configError(env, { A: 'x', B: '' }, 'env').path, 'env.B')
  t.equal(configError(env, ['x'], 'env').message, 'env must be an object (got an array)')
})

t.test('anyOf and literal', async (t) => {
  const threadsOrAuto = anyOf<number | 'auto'>('a positive integer or \'auto\'', positiveInt, literal('auto' as const))
  t.equal(threadsOrAuto(4, 'n'), 4)
  t.equal(threadsOrAuto('auto', 'n'), 'auto')
  t.equal(configError(threadsOrAuto, 'many', 'n').message, "n must be a positive integer or 'auto' (got \"many\")")
  t.equal(configError(literal(7), 8, 'l').message, 'l must be 7 (got 8)')
  t.equal(configError(literal('x'), 'y', 'l').message, 'l must be "x" (got "y")')

  const boom: Check<never> = () => {
    throw new TypeError('not a config problem')
  }
  t.throws(() => anyOf('anything', boom)(1, 'p'), TypeError, 'non-config errors are not swallowed')
})

t.test('optional', async (t) => {
  const maybe = optional(positiveInt)
  t.equal(maybe(undefined, 'm'), undefined)
  t.equal(maybe(2, 'm'), 2)
  t.equal(configError(maybe, 0, 'm').message, 'm must be a positive integer (got 0)')
})

t.test('object: known options, nested paths, absent values', async (t) => {
  const shape = object({
    label: string,
    maxThreads: positiveInt,
    provider: object({ nodes: positiveInt, init: arrayOf(string) }),
  })
  t.same(shape(undefined, 'executors[0]'), {}, 'undefined is an empty options object')
  t.same(shape({}, 'executors[0]'), {})
  t.same(shape({ label: 'x', maxThreads: 2 }, 'executors[0]'), { label: 'x', maxThreads: 2 })
  t.same(shape({ label: undefined }, 'p'), {}, 'undefined values count as absent')
  t.notOk('label' in shape({ label: undefined }, 'p'), 'and are not copied')

  t.equal(
    configError(shape, { maxThreads: 0 }, 'executors[0]').message,
    'executors[0].maxThreads must be a positive integer (got 0)',
  )
  t.equal(configError(shape, { provider: { nodes: -2 } }, 'executors[1]').path, 'executors[1].provider.nodes', 'nested object paths')
  t.equal(configError(shape, { provider: { init: ['ok', ''] } }, 'executors[1]').path, 'executors[1].provider.init[1]', 'arrays inside objects')
  t.equal(configError(shape, { label: '' }, '').path, 'label', 'top-level path without a leading dot')

  t.equal(configError(shape, 'threads', 'executors[0]').message, 'executors[0] must be an object (got "threads")')
  t.equal(configError(shape, null, 'executors[0]').message, 'executors[0] must be an object (got null)')
  t.equal(configError(shape, [], 'executors[0]').message, 'executors[0] must be an object (got an array)')
  t.equal(configError(shape, new (class Opts {})(), 'x').message, 'x must be an object (got an object)', 'class instances are not options objects')
  t.same(shape(Object.assign(Object.create(null), { label: 'n' }), 'x'), { label: 'n' }, 'null-prototype objects are accepted')
})

t.test('object: unknown keys with did-you-mean suggestions', async (t) => {
  const shape = object({ label: string, maxThreads: positiveInt, maxBatchSize: positiveInt, provider: object({ nodesPerBlock: positiveInt }) })
  const typo = configError(shape, { maxThread: 2 }, 'executors[0]')
  t.equal(typo.path, 'executors[0].maxThread')
  t.equal(
    typo.message,
    "executors[0].maxThread is not a known option; did you mean 'maxThreads'? (known: label, maxThreads, maxBatchSize, provider)",
  )
  t.match(configError(shape, { lable: 'x' }, 'e').message, /did you mean 'label'\?/, 'transposed letters')
  t.match(configError(shape, { MaxThreads: 2 }, 'e').message, /did you mean 'maxThreads'\?/, 'case differences')
  t.match(configError(shape, { maxBatchsize: 2 }, 'e').message, /did you mean 'maxBatchSize'\?/)
  t.match(
    configError(shape, { provider: { nodesPerBlok: 1 } }, 'executors[2]').message,
    /^executors\[2\]\.provider\.nodesPerBlok is not a known option; did you mean 'nodesPerBlock'\? \(known: nodesPerBlock\)$/,
    'nested unknown keys',
  )
  const unrelated = configError(shape, { colour: 'blue' }, 'e').message
  t.notMatch(unrelated, /did you mean/, 'no far-fetched suggestion')
  t.match(unrelated, /^e\.colour is not a known option \(known: label, maxThreads, maxBatchSize, provider\)$/, 'still lists the known options')
  t.ok(configError(shape, { label: 5, extra: 1 }, 'e') instanceof ConfigError)
})

t.test('object: keys named after Object.prototype members are unknown options', async (t) => {
  const shape = object({ label: string })
  for (const [label, value] of [
    ['toString', { toString: 1 }],
    ['constructor', { constructor: 'x' }],
    ['hasOwnProperty', { hasOwnProperty: true }],
    ['__proto__ (from JSON)', JSON.parse('{"__proto__": {"label": 1}}')],
  ] as const) {
    let outcome: unknown
    try {
      outcome = shape(value, 'opts')
    } catch (error) {
      outcome = error
    }
    t.ok(outcome instanceof ConfigError, `${label} is rejected with a ConfigError`)
    t.match((outcome as Error)?.message, /is not a known option/, `${label}: says it is unknown`)
  }
})
