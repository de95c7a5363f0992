import t from 'tap'
import { execFileSync } from 'node:child_process'
import { deferred, delay, settledWithin } from '../../dist/util/deferred.js'

const deferredUrl = new URL('../../dist/util/deferred.js', import.meta.url).href

/** Runs an ES module snippet in a fresh node and returns its stdout and how long it took. */
function runSnippet(body: string): { out: string; ms: number } {
  const started = Date.now()
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import { delay, settledWithin } from ${JSON.stringify(deferredUrl)}\n${body}`], {
    encoding: 'utf8',
    timeout: 20_000,
  })
  return { out, ms: Date.now() - started }
}

t.test('deferred() exposes resolve and reject', async (t) => {
  const ok = deferred<number>()
  ok.resolve(5)
  t.equal(await ok.promise, 5)

  const bad = deferred<number>()
  const error = new Error('nope')
  bad.reject(error)
  await t.rejects(bad.promise, error)

  const adopted = deferred<string>()
  adopted.resolve(Promise.resolve('from a promise'))
  t.equal(await adopted.promise, 'from a promise', 'resolve adopts a thenable')

  const once = deferred<number>()
  once.resolve(1)
  once.resolve(2)
  once.reject(new Error('ignored'))
  t.equal(await once.promise, 1, 'only the first settle counts')
})

t.test('delay() waits about the given time', async (t) => {
  // delay() is unref'd: something else has to keep this process alive while it waits.
  const keepAlive = setInterval(() => {}, 1_000)
  t.teardown(() => clearInterval(keepAlive))
  const started = Date.now()
  await delay(30)
  t.ok(Date.now() - started >= 25, 'waited')
  t.equal(await delay(0), undefined)
})

t.test('delay() does not keep the process alive', async (t) => {
  const { out, ms } = runSnippet(`delay(60_000).then(() => console.log('late')); console.log('done')`)
  t.equal(out.trim(), 'done')
  t.ok(ms < 15_000, `the process exited without waiting 60 s (${ms} ms)`)
})

t.test('settledWithin: true when the promise settles in time', async (t) => {
  t.equal(await settledWithin(Promise.resolve('v'), 1_000), true, 'an already-resolved promise')
  t.equal(await settledWithin(new Promise((resolve) => setTimeout(resolve, 10)), 1_000), true, 'resolves in time')
  t.equal(await settledWithin(Promise.reject(new Error('x')), 1_000), true, 'a rejection in time counts as settled')
  t.equal(
    await settledWithin(new Promise((_, reject) => setTimeout(() => reject(new Error('later')), 10)), 1_000),
    true,
    'rejects in time',
  )
  t.equal(await settledWithin(Promise.resolve(), 0), true, 'an already-resolved promise wins even with 0 ms')
  t.equal(await settledWithin(Promise.resolve(), -5), true, 'a negative time is treated as 0')
})

t.test('settledWithin: false when the promise does not settle in time', async (t) => {
  const started = Date.now()
  t.equal(await settledWithin(new Promise(() => {}), 30), false, 'a promise that never settles')
  t.ok(Date.now() - started >= 25, 'waited about the deadline')
  t.equal(await settledWithin(new Promise((resolve) => setTimeout(resolve, 200)), 10), false, 'settles too late')
  t.equal(await settledWithin(new Promise(() => {}), 0), false, 'a pending promise with 0 ms')
})

t.test('settledWithin never rejects, even when the promise rejects late', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled)
  })
  const lateFailure = new Promise((_, reject) => setTimeout(() => reject(new Error('late failure')), 20))
  t.equal(await settledWithin(lateFailure, 5), false)
  t.equal(await settledWithin(Promise.reject(new Error('early failure')), 5), true)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(unhandled, [], 'the late rejection is not reported as unhandled')
})

t.test('settledWithin with an infinite deadline waits for the promise', async (t) => {
  t.equal(await settledWithin(new Promise((resolve) => setTimeout(resolve, 20)), Infinity), true)
  t.equal(await settledWithin(Promise.reject(new Error('x')), Infinity), true, 'and does not reject')
})

t.test('settledWithin clears its timer once the promise settles', async (t) => {
  const { out, ms } = runSnippet(`console.log(await settledWithin(Promise.resolve(), 60_000))`)
  t.equal(out.trim(), 'true')
  t.ok(ms < 15_000, `the process exited without waiting for the 60 s deadline (${ms} ms)`)
})
