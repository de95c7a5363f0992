// DragonHPC users hand a DDict to many processes: counters from many tasks, a dictionary mutated
// in tasks, large arrays, then destroy. On servers DDict.create starts and a ThreadPoolExecutor.
import { connect } from 'node:net'
import t from 'tap'
import { DDict } from 'tsflow/ddict'
import { redisMissing } from '../../helpers/redis.js'
import { startKernel } from '../../helpers/executors.js'
import { countUp, mutate } from '../../fixtures/ddict-parity-apps.js'
import { waitFor } from '../../helpers/wait.js'
import { created } from '../../helpers/ddict-parity.js'

/** Whether something listens at host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
  })
}

async function serversStopped(dict: DDict): Promise<void> {
  for (const s of dict.descriptor().shards) await waitFor(async () => !(await listening(s.host, s.port)), `the server at ${s.host}:${s.port} to stop`)
}

const skip = redisMissing() ?? false

t.test('8 tasks x 100 fetchAdd on a thread pool: exactly 800, every value seen once', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-counters' })
  await startKernel(t, 'threads', { workers: 4 })
  const seen = (await Promise.all(Array.from({ length: 8 }, () => countUp(d, 'counter', 100)))).flat()
  t.equal(await d.get('counter'), 800)
  t.equal(await d.fetchAdd('counter', 0), 800)
  t.equal(seen.length, 800)
  t.same(
    seen.sort((a, b) => a - b),
    Array.from({ length: 800 }, (_, i) => i),
    'fetchAdd returns the value before the add: 0..799, each once',
  )
})

t.test('a dict passed to tasks and mutated there; large Float64Arrays round trip', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-mutate', totalMem: 512 * 1024 * 1024 })
  await startKernel(t, 'threads', { workers: 2 })
  const big = new Float64Array(4 * 1024 * 1024) // 32 MB
  for (let i = 0; i < big.length; i += 4099) big[i] = i + 0.25
  big[big.length - 1] = -1.5
  await d.set('big', big)
  const back = (await d.get('big')) as Float64Array
  t.ok(back instanceof Float64Array)
  t.equal(back.length, big.length)
  t.equal(Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), Buffer.from(big.buffer)), 0, '32 MB back bit for bit')

  for (let id = 0; id < 4; id++) {
    await d.setMany([
      [`input-${id}`, `in ${id}`],
      [`scratch-${id}`, id],
      [`grid-${id}`, Float64Array.from({ length: 1000 }, (_, i) => i + id)],
    ])
  }
  const results = await Promise.all([0, 1, 2, 3].map((id) => mutate(d, id)))
  for (const [id, result] of results.entries()) {
    t.same(result, { popped: `in ${id}`, length: 1000 })
    t.same(await d.get(`task-${id}`), { id })
    t.equal(await d.has(`input-${id}`), false)
    t.equal(await d.has(`scratch-${id}`), false)
    const grid = (await d.get(`grid-${id}`)) as Float64Array
    t.equal(grid[999], 2 * (999 + id))
  }
  t.equal(await d.length(), 1 + 4 * 2, 'big, and per task its grid and its own key')
})

t.test('destroy, then any use: DDictDestroyed naming the dictionary and the call', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-destroy' })
  await d.set('k', 1)
  const other = DDict.attach(d.descriptor())
  const pinned = d.manager(0)
  await d.destroy()
  for (const [what, call] of [
    ['get', () => d.get('k')],
    ['set', () => other.set('k', 2)],
    ['length', () => pinned.length()],
    ['keys', () => other.keys().next()],
    ['destroy', () => d.destroy()],
  ] as const) {
    await t.rejects(call(), { code: 'E_DDICT_DESTROYED', name: 'DDictDestroyed', message: new RegExp(`parity-destroy[\\s\\S]*${what}`) }, what)
  }
  await t.rejects(DDict.attach(d.descriptor()).get('k'), { code: 'E_DDICT_DESTROYED' }, 'a handle attached later too')
})

t.test('detach, then destroy (Dragon test_detach_client, test_attach_ddict): the servers stop', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-detach' })
  await d.set('hello', 'world')
  const descriptor = d.descriptor()
  await d.detach()
  await t.rejects(d.get('hello'), { code: 'E_USAGE', message: /detached/ })
  const again = DDict.attach(d.descriptor())
  t.equal(await again.get('hello'), 'world', 'the servers outlive a detach')
  await again.detach()
  await d.destroy()
  await serversStopped(d)
  t.pass('a detached creating handle stopped its servers')
  await t.rejects(DDict.attach(descriptor).get('hello'), { code: 'E_DDICT_DESTROYED' })

  const e = await created(t, { name: 'parity-detach-2' })
  await e.set('hello', 'world')
  const attached = DDict.attach(JSON.parse(JSON.stringify(e.descriptor())))
  await e.detach()
  t.equal(await attached.get('hello'), 'world')
  await attached.destroy()
  await serversStopped(e)
  t.pass('destroy by an attached handle of the creating process stopped the servers')
  await t.rejects(e.get('hello'), { code: 'E_DDICT_DESTROYED' })

  // the creating handle detaches first, as the last handle of this process: a handle attached later here still stops the servers
  const f = await created(t, { name: 'parity-detach-3' })
  await f.set('x', 1)
  await f.detach()
  const later = DDict.attach(f.descriptor())
  t.equal(await later.get('x'), 1)
  await later.destroy()
  await serversStopped(f)
  t.pass('a handle attached after every handle detached stopped the servers')
})
