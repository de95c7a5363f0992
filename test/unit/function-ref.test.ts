import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  cachedFunction,
  describeFunction,
  registerAppFunction,
  resolveFunction,
  type FunctionDescriptor,
} from '../../dist/serialize/function-ref.js'
import { AppNotFound, FunctionNotTransportable, TsflowError, WorkflowInWorker } from 'tsflow'

type AnyFunction = (...args: never[]) => unknown
const functionRefUrl = new URL('../../dist/serialize/function-ref.js', import.meta.url).href
const errorsUrl = new URL('../../dist/errors.js', import.meta.url).href

const dir = mkdtempSync(join(tmpdir(), 'tsflow-function-ref-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

let moduleCounter = 0
/** A module file of its own for each test, since the app registry is process-wide. */
function writeModule(source: string, extension = '.mjs'): string {
  const file = join(dir, `module-${++moduleCounter}${extension}`)
  writeFileSync(file, source)
  return pathToFileURL(file).href
}
function fakeModuleUrl(): string {
  return pathToFileURL(join(dir, `never-written-${++moduleCounter}.mjs`)).href
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}
function thrown(fn: () => unknown): Error {
  try {
    fn()
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a throw')
}

t.test("'auto' with a module URL sends a reference", async (t) => {
  const moduleUrl = fakeModuleUrl()
  const first = (x: number) => x + 1
  const second = (x: number) => x + 2
  const third = (x: number) => x + 3

  const descriptor = describeFunction(first, 'increment', 'auto', moduleUrl)
  t.same(descriptor, { t: 'ref', module: moduleUrl, key: 'increment', name: 'increment' })
  t.same(describeFunction(first, 'increment', 'auto', moduleUrl), descriptor, 'the key is stable across repeated registration')
  t.same(describeFunction(first, 'increment', 'reference', moduleUrl), descriptor, "'reference' gives the same key")

  const secondRef = describeFunction(second, 'increment', 'auto', moduleUrl)
  t.equal(secondRef.t, 'ref')
  t.equal((secondRef as { key: string }).key, 'increment#2', 'a second function with the same name gets name#2')
  t.equal(secondRef.name, 'increment', 'the app name is unchanged')
  t.equal((describeFunction(third, 'increment', 'auto', moduleUrl) as { key: string }).key, 'increment#3')
  t.equal((describeFunction(second, 'increment', 'auto', moduleUrl) as { key: string }).key, 'increment#2', 'still stable')
  t.equal((describeFunction(first, 'increment', 'auto', moduleUrl) as { key: string }).key, 'increment', 'still stable')

  const otherName = describeFunction((x: number) => x, 'identity', 'auto', moduleUrl)
  t.equal((otherName as { key: string }).key, 'identity', 'names are counted separately')

  const otherModule = fakeModuleUrl()
  const elsewhere = describeFunction(second, 'increment', 'auto', otherModule)
  t.equal((elsewhere as { key: string }).key, 'increment', 'each module counts its own names')

  t.equal(registerAppFunction(moduleUrl, 'increment', first), 'increment', 'registerAppFunction agrees with describeFunction')
})

t.test("'auto' without a module URL and 'source' send the source", async (t) => {
  const add = (a: number, b: number) => a + b
  const auto = describeFunction(add, 'add', 'auto', undefined)
  t.same(auto, { t: 'src', source: add.toString(), name: 'add' })
  const source = describeFunction(add, 'add', 'source', fakeModuleUrl())
  t.same(source, { t: 'src', source: add.toString(), name: 'add' }, "'source' ignores the module URL")
})

t.test("'reference' without a module URL is FunctionNotTransportable", async (t) => {
  const error = thrown(() => describeFunction(() => 1, 'replApp', 'reference', undefined))
  t.ok(error instanceof FunctionNotTransportable)
  t.ok(error instanceof TsflowError)
  t.equal((error as FunctionNotTransportable).code, 'E_FUNCTION_TRANSPORT')
  t.match(error.message, /^app replApp cannot be sent to a worker/, 'names the app')
  t.match(error.message, /outside any module file/, 'says why')
  t.match(error.message, /transport: 'source'/, 'says what to do')
})

t.test("'source' mode compiles back into working functions", async (t) => {
  const objectWithMethods = {
    twice(x: number) {
      return 2 * x
    },
    async later(x: number) {
      return x + 100
    },
    *count(n: number) {
      for (let i = 0; i < n; i++) yield i
    },
  }
  const generated = new Function('a', 'b', 'return a * b') as (a: number, b: number) => number
  const cases: [string, AnyFunction, unknown[], unknown][] = [
    ['arrow', ((a: number, b: number) => a + b) as AnyFunction, [2, 3], 5],
    ['arrow without parens', ((x: number) => x * x) as AnyFunction, [7], 49],
    ['async arrow', (async (x: number) => x - 1) as AnyFunction, [10], 9],
    [
      'function',
      function multiply(a: number, b: number) {
        return a * b
      } as AnyFunction,
      [4, 5],
      20,
    ],
    [
      'anonymous function',
      function (s: string) {
        return s.toUpperCase()
      } as AnyFunction,
      ['abc'],
      'ABC',
    ],
    [
      'async function',
      async function fetchIt(x: number) {
        await new Promise((resolve) => setTimeout(resolve, 1))
        return x * 3
      } as AnyFunction,
      [3],
      9,
    ],
    ['method shorthand', objectWithMethods.twice as AnyFunction, [21], 42],
    ['async method shorthand', objectWithMethods.later as AnyFunction, [1], 101],
    ['generator method shorthand', objectWithMethods.count as AnyFunction, [3], [0, 1, 2]],
    ['new Function', generated as AnyFunction, [6, 7], 42],
  ]
  for (const [label, fn, args, expected] of cases) {
    const descriptor = describeFunction(fn, `app_${label}`, 'source', undefined)
    t.equal(descriptor.t, 'src', `${label}: sent as source`)
    const compiled = await resolveFunction(descriptor)
    t.type(compiled, 'function', `${label}: compiles to a function`)
    t.not(compiled, fn, `${label}: a new function, not the original`)
    let result = await (compiled as (...a: unknown[]) => unknown)(...args)
    if (label.startsWith('generator')) result = [...(result as Iterable<unknown>)]
    t.same(result, expected, `${label}: computes the same result`)
  }
})

t.test('built-in, bound functions and classes are FunctionNotTransportable', async (t) => {
  function mine(x: number) {
    return x
  }
  const cases: [string, AnyFunction, RegExp][] = [
    ['built-in', Math.max as AnyFunction, /built-in or bound function/],
    ['bound', mine.bind(null) as AnyFunction, /built-in or bound function/],
    ['class', class Worker {} as unknown as AnyFunction, /it is a class, not a function/],
  ]
  for (const mode of ['source', 'auto'] as const) {
    for (const [label, fn, why] of cases) {
      const error = thrown(() => describeFunction(fn, 'badApp', mode, undefined))
      t.ok(error instanceof FunctionNotTransportable, `${mode}/${label}: FunctionNotTransportable`)
      t.match(error.message, /^app badApp cannot be sent to a worker: /, `${mode}/${label}: names the app`)
      t.match(error.message, why, `${mode}/${label}: says why`)
      t.match(error.message, /wrap/, `${mode}/${label}: says what to do`)
    }
  }
})

t.test('a function whose source does not compile on its own is FunctionNotTransportable', async (t) => {
  // A class method using a private member only compiles inside its class.
  const Klass = (0, eval)('(class { #secret() { return 1 } reveal() { return this.#secret() } })') as new () => {
    reveal: AnyFunction
  }
  const error = thrown(() => describeFunction(new Klass().reveal, 'privateApp', 'source', undefined))
  t.ok(error instanceof FunctionNotTransportable)
  t.match(error.message, /^app privateApp cannot be sent to a worker: its source does not compile on its own/)
})

t.test('resolveFunction of bad source is FunctionNotTransportable naming the app', async (t) => {
  for (const source of ['not valid javascript (', '42', '']) {
    const error = await rejection(resolveFunction({ t: 'src', source, name: 'broken' }))
    t.ok(error instanceof FunctionNotTransportable, `${JSON.stringify(source)}: FunctionNotTransportable`)
    t.match(error.message, /^app broken cannot be sent to a worker: its source failed to compile on the worker/)
  }
})

t.test('resolveFunction finds functions registered by the module at its top level', async (t) => {
  const url = writeModule(`
    import { registerAppFunction } from ${JSON.stringify(functionRefUrl)}
    registerAppFunction(import.meta.url, 'work', (x) => x + 1)
    registerAppFunction(import.meta.url, 'work', (x) => x * 10)
    export const unrelated = 1
  `)
  const first = await resolveFunction({ t: 'ref', module: url, key: 'work', name: 'work' })
  const second = await resolveFunction({ t: 'ref', module: url, key: 'work#2', name: 'work' })
  t.equal((first as (x: number) => number)(3), 4, 'the first registration')
  t.equal((second as (x: number) => number)(3), 30, 'the second registration, found by name#2')
})

t.test('resolveFunction falls back to an export of the app name', async (t) => {
  const url = writeModule('export function tripled(x) { return x * 3 }')
  const fn = await resolveFunction({ t: 'ref', module: url, key: 'tripled', name: 'tripled' })
  t.equal((fn as (x: number) => number)(5), 15)
})

t.test('resolveFunction caches what it resolved', async (t) => {
  const url = writeModule('export function cachedApp() { return "cached" }')
  const descriptor: FunctionDescriptor = { t: 'ref', module: url, key: 'cachedApp', name: 'cachedApp' }
  t.equal(cachedFunction(descriptor), undefined, 'nothing cached before the first resolve')
  const fn = await resolveFunction(descriptor)
  t.equal(cachedFunction(descriptor), fn, 'cached after the first resolve')
  t.equal(await resolveFunction(descriptor), fn, 'the same function the second time')

  const src: FunctionDescriptor = { t: 'src', source: '(x) => x + "!"', name: 'shout' }
  const compiled = await resolveFunction(src)
  t.equal(cachedFunction(src), compiled)
  t.equal(await resolveFunction(src), compiled)
})

t.test('resolveFunction of a module that does not define the app is AppNotFound', async (t) => {
  const url = writeModule('export const notAFunction = 1\nexport const missingApp = "a string, not a function"')
  const error = await rejection(resolveFunction({ t: 'ref', module: url, key: 'missingApp', name: 'missingApp' }))
  t.ok(error instanceof AppNotFound)
  t.ok(error instanceof TsflowError)
  t.equal((error as AppNotFound).code, 'E_APP_NOT_FOUND')
  t.match(error.message, `app missingApp was not defined when the worker imported ${url}`, 'names the app and module')
  t.match(error.message, /top level of a module/, 'explains where apps must be created')
  t.match(error.message, /transport: 'source'/, 'offers the alternative')

  const keyed = await rejection(resolveFunction({ t: 'ref', module: url, key: 'other#2', name: 'other' }))
  t.ok(keyed instanceof AppNotFound, 'a missing name#N key is AppNotFound too')
})

t.test('resolveFunction of a non-existent module is AppNotFound with a cause', async (t) => {
  const url = fakeModuleUrl()
  const error = await rejection(resolveFunction({ t: 'ref', module: url, key: 'ghost', name: 'ghost' }))
  t.ok(error instanceof AppNotFound)
  t.match(error.message, `the worker could not import ${url} to find app ghost`)
  t.ok(error.cause instanceof Error, 'the import failure is the cause')
  t.match(error.message, (error.cause as Error).message, 'the message includes why the import failed')
  t.match(error.message, /that file is not on the worker's host.*transport: 'source'/, 'a missing module file says what to do')
})

t.test('resolveFunction of a module that throws while loading is AppNotFound with that cause', async (t) => {
  const url = writeModule('throw new RangeError("top-level failure")')
  const error = await rejection(resolveFunction({ t: 'ref', module: url, key: 'x', name: 'x' }))
  t.ok(error instanceof AppNotFound)
  t.match(error.message, /top-level failure/)
  t.ok(error.cause instanceof RangeError)
})

t.test('WorkflowInWorker raised by the module is passed through unchanged', async (t) => {
  const url = writeModule(`
    import { WorkflowInWorker } from ${JSON.stringify(errorsUrl)}
    throw new WorkflowInWorker('loadConfig()')
  `)
  const error = await rejection(resolveFunction({ t: 'ref', module: url, key: 'x', name: 'x' }))
  t.ok(error instanceof WorkflowInWorker, 'not wrapped in AppNotFound')
  t.notOk(error instanceof AppNotFound)
})

t.test('a TypeScript module on a worker without a loader gets a hint', async (t) => {
  // Plain node (no TypeScript loader), as a worker of a workflow started without tsx would be.
  const url = writeModule('export function typed(x: number): number { return x }', '.ts')
  const script = `
    import { resolveFunction } from ${JSON.stringify(functionRefUrl)}
    try {
      await resolveFunction({ t: 'ref', module: ${JSON.stringify(url)}, key: 'typed', name: 'typed' })
      console.log(JSON.stringify({ resolved: true }))
    } catch (error) {
      console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message }))
    }
  `
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  const result = JSON.parse(out.trim().split('\n').pop()!) as { name?: string; code?: string; message?: string; resolved?: boolean }
  if (result.resolved) {
    t.pass('this Node strips types itself; no hint needed')
    return
  }
  t.equal(result.name, 'AppNotFound')
  t.equal(result.code, 'E_APP_NOT_FOUND')
  t.match(result.message, /Unknown file extension/)
  t.match(result.message, /TypeScript loader such as tsx/, 'tells the user how to fix it')
})
