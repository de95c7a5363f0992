import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { ErrorCode, submitScoped } from 'tsflow'
import {
  borrow,
  borrowCount,
  borrowsIn,
  clone,
  dispose,
  extract,
  factoryOf,
  FileConnector,
  intoOwned,
  isResolved,
  isUsable,
  LocalConnector,
  mutBorrow,
  ownedProxy,
  ownershipOf,
  release,
  releaseWhenSettled,
  resolve,
  Store,
  update,
  type OwnedProxy,
} from 'tsflow/proxy'
import * as apps from '../fixtures/ownership-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const { encode, decode } = (await import(pathToFileURL(join(root, 'dist/serialize/codec.js')).href)) as {
  encode(value: unknown): Uint8Array
  decode<T>(bytes: Uint8Array): T
}
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-ownership-'))
const store = new Store(`ownership-${process.pid}`, new LocalConnector())
t.teardown(async () => {
  await store.close()
  rmSync(scratch, { recursive: true, force: true })
})

const exists = (proxy: unknown) => store.exists(factoryOf(proxy).key)

/** The error `run` throws (sync or async), with its code and rule. */
async function failure(run: () => unknown): Promise<{ code?: string; rule?: string; message: string; cause?: { code?: string; rule?: string } }> {
  try {
    await run()
  } catch (error) {
    return error as never
  }
  throw new Error('expected an error')
}

t.test('borrow rules: many shared borrows or one mutable one, each break is E_BORROW naming its rule', async (t) => {
  const owned = await store.owned({ rows: [1, 2, 3] })
  t.equal(ownershipOf(owned), 'owned')
  t.same(owned.rows, [1, 2, 3], 'an owned proxy behaves like its target')

  const a = borrow(owned)
  const b = borrow(owned)
  t.equal(ownershipOf(a), 'ref')
  t.same([a.rows.length, b.rows.length], [3, 3], 'shared borrows read the object')
  t.same(borrowCount(owned), { shared: 2, mut: 0 })

  const cases: [string, () => unknown, string][] = [
    ['a mutable borrow next to shared ones', () => mutBorrow(owned), 'borrowed'],
    ['dispose while borrowed', () => dispose(owned), 'borrowed'],
    ['update of the owner while borrowed', () => update(owned, { rows: [] }), 'borrowed'],
    ['a move (encode) while borrowed', () => encode(owned), 'borrowed'],
    ['update through a shared borrow', () => update(a as never, { rows: [] }), 'read-only'],
    ['a borrow of a borrow', () => borrow(a as never), 'not-owned'],
    ['release of an owned proxy', () => release(owned as never), 'not-owned'],
  ]
  for (const [what, run, rule] of cases) {
    const error = await failure(run)
    const borrowError = error.code === ErrorCode.SERIALIZATION ? error.cause! : error
    t.equal(borrowError.code, ErrorCode.BORROW, `${what}: E_BORROW`)
    t.equal(borrowError.rule, rule, `${what}: rule ${rule}`)
  }
  t.match((await failure(() => dispose(owned))).message, store.name, 'the message names the store')

  release(a)
  release(a)
  t.pass('releasing twice is harmless')
  t.equal((await failure(() => a.rows)).rule, 'released', 'a released borrow cannot be used')
  t.equal((await failure(() => resolve(a))).rule, 'released')
  t.equal((await failure(() => encode(a))).cause?.rule, 'released', 'nor sent')
  release(b)
  t.same(borrowCount(owned), { shared: 0, mut: 0 })

  const mut = mutBorrow(owned)
  t.equal(ownershipOf(mut), 'mut')
  t.equal((await failure(() => borrow(owned))).rule, 'mut-borrowed', 'no shared borrow next to a mutable one')
  t.equal((await failure(() => mutBorrow(owned))).rule, 'mut-borrowed', 'no second mutable borrow')
  t.equal((await failure(() => dispose(owned))).rule, 'borrowed')
  release(mut)

  const plain = await store.proxy({ plain: true })
  t.equal((await failure(() => borrow(plain as never))).rule, 'not-owned', 'a plain proxy cannot be borrowed')
  t.equal((await failure(() => update(plain as never, { plain: false }))).rule, 'not-owned')
  t.equal((await failure(() => borrow({} as never))).code, ErrorCode.USAGE, 'a non-proxy is a usage error')

  await dispose(owned)
  t.equal((await failure(() => owned.rows)).rule, 'disposed', 'use after dispose')
  t.equal((await failure(() => borrow(owned))).rule, 'disposed', 'borrow after dispose')
  t.equal((await failure(() => encode(owned))).cause?.rule, 'disposed', 'send after dispose')
  await dispose(owned)
  t.pass('disposing twice is harmless')
})

t.test('dispose evicts: dispose(), `await using`, `using`', async (t) => {
  const a = await store.owned({ a: 1 })
  t.ok(await exists(a))
  await dispose(a)
  t.notOk(await exists(a), 'dispose() evicted it')
  t.notOk(isUsable(a))

  let b: OwnedProxy<{ b: number }> | undefined
  {
    await using owned = await store.owned({ b: 2 })
    b = owned
    t.equal(owned.b, 2)
  }
  t.notOk(await exists(b), '`await using` evicted it at the end of the scope')

  let c: OwnedProxy<{ c: number }> | undefined
  {
    using owned = await ownedProxy(store, { c: 3 })
    c = owned
    using ref = borrow(owned)
    t.equal(ref.c, 3)
  }
  t.notOk(isUsable(c), 'the borrow was released first (declared later), then the owner disposed')
  await waitFor(async () => !(await exists(c)), 'the sync dispose to evict')
})

t.test('clone, intoOwned, update', async (t) => {
  const owned = await store.owned({ n: 1 })
  const copy = await clone(owned)
  t.not(factoryOf(copy).key.id, factoryOf(owned).key.id, 'a clone has its own key')
  t.equal(copy.n, 1)
  await update(copy, { n: 2 })
  t.equal(copy.n, 2, 'the proxy used for update holds the new value')
  t.equal((await store.get<{ n: number }>(factoryOf(copy).key)).n, 2, 'and the store has it')
  t.equal(owned.n, 1, 'the original is untouched')
  const resolvedCopy = await clone(copy)
  t.equal(resolvedCopy.n, 2, 'a resolved owner is cloned from its target')
  await dispose(copy)
  t.ok(await exists(owned), 'disposing the clone leaves the original')
  await dispose(resolvedCopy)

  // A mutable borrow's update reaches the owner once the borrow is released.
  t.equal(owned.n, 1)
  const mut = mutBorrow(owned)
  await update(mut, { n: 5 })
  t.equal(mut.n, 5)
  release(mut)
  t.equal(owned.n, 5, 'the owner reads the object again after a mutable borrow')
  await update(owned, { n: 6 })
  {
    using ref = borrow(owned)
    t.equal((await extract(ref)).n, 6, 'a borrow made after the update reads the new value')
  }

  const plain = await store.proxy({ p: 1 }, { evict: true })
  await resolve(plain)
  t.notOk(await exists(plain), 'evict: true did its job')
  const kept = await store.proxy({ p: 2 }, { evict: true })
  const taken = intoOwned(kept)
  t.equal(ownershipOf(taken), 'owned')
  t.equal(taken.p, 2)
  t.ok(await exists(taken), 'an owned proxy does not evict on resolve')
  t.equal((await failure(() => kept.p)).rule, 'moved', 'the plain proxy taken into ownership cannot be used')
  t.equal((await failure(() => encode(kept))).cause?.rule, 'moved', 'nor sent')
  t.equal((await failure(() => intoOwned(taken))).code, ErrorCode.USAGE, 'an owned proxy cannot be taken again')
  await dispose(taken)
  t.notOk(await exists(taken))
  await dispose(owned)
})

t.test('encoding an owned proxy moves it; a borrow travels as a borrow', async (t) => {
  const owned = await store.owned({ big: 'object' })
  t.equal(owned.big, 'object')
  const bytes = encode([owned])
  t.notOk(isUsable(owned), 'the sender no longer owns it')
  t.equal((await failure(() => owned.big)).rule, 'moved', 'use after move')
  t.equal((await failure(() => borrow(owned))).rule, 'moved', 'borrow after move')
  t.ok(encode(owned), 'a moved proxy may be encoded again (an executor can encode a batch twice)')
  await dispose(owned)
  t.ok(await exists(owned), 'disposing a moved proxy does not evict: its new owner holds the object')

  const [received] = decode<[OwnedProxy<{ big: string }>]>(bytes)
  t.equal(ownershipOf(received), 'owned', 'the receiver gets an owned proxy')
  t.notOk(isResolved(received))
  t.equal(received.big, 'object')
  await dispose(received)
  t.notOk(await exists(received), "the receiver's dispose evicts")

  const owner = await store.owned({ shared: true })
  const ref = borrow(owner)
  const [remote] = decode<[typeof ref]>(encode([ref]))
  t.equal(ownershipOf(remote), 'ref', 'a borrow arrives as a borrow')
  t.ok(isUsable(ref), "the sender's borrow stays until it is released")
  t.equal(remote.shared, true)
  release(remote)
  await dispose(remote)
  t.ok(await exists(owner), "the receiver's release or dispose of a borrow never evicts")
  t.same(borrowCount(owner), { shared: 1, mut: 0 }, 'nor gives back the sender’s borrow')
  release(ref)
  await dispose(owner)
  t.notOk(await exists(owner))
})

t.test('borrowsIn and releaseWhenSettled', async (t) => {
  const owned = await store.owned([1, 2])
  const a = borrow(owned)
  const b = borrow(owned)
  const plain = await store.proxy('plain')
  t.same(borrowsIn([a, { nested: [b, plain] }, owned, 3, null]).length, 2, 'finds borrows at the top level and inside arrays and plain objects')

  let fail!: (error: Error) => void
  const pending = new Promise<never>((_, reject) => (fail = reject))
  t.equal(releaseWhenSettled(pending, [a, b]), pending, 'returns what it was given')
  t.same(borrowCount(owned), { shared: 2, mut: 0 })
  fail(new Error('task failed'))
  await pending.catch(() => {})
  t.same(borrowCount(owned), { shared: 0, mut: 0 }, 'released when it settled, before the awaiting code went on, also on failure')

  const thrown = await failure(() =>
    submitScoped((_data: number[]) => {
      throw new Error('refused at submit')
    }, borrow(owned)),
  )
  t.match(thrown.message, 'refused at submit')
  t.same(borrowCount(owned), { shared: 0, mut: 0 }, 'submitScoped releases at once when the call throws')
  const mut = mutBorrow(owned)
  t.equal(await submitScoped(async (data: number[]) => data.length, { nested: [mut] } as never), undefined)
  t.same(borrowCount(owned), { shared: 0, mut: 0 }, 'any function returning a promise-like will do; nested borrows are found')
  await dispose(owned)
})

t.test('the FinalizationRegistry backstop (child process with --expose-gc)', async (t) => {
  const directory = join(scratch, 'gc')
  const script = `
    import { FileConnector, Store, borrow, borrowCount, dispose, factoryOf, release } from 'tsflow/proxy'
    const { encode } = await import(${JSON.stringify(pathToFileURL(join(root, 'dist/serialize/codec.js')).href)})
    const store = new Store('gc', new FileConnector({ directory: ${JSON.stringify(directory)} }))
    const tick = () => new Promise((done) => setTimeout(done, 5))
    async function until(predicate) {
      // A WeakRef's deref() keeps its target until the current job ends: collect in a later one.
      for (let i = 0; i < 400; i++) { await tick(); globalThis.gc(); await tick(); if (await predicate()) return true }
      return false
    }
    const report = {}
    // an owned proxy dropped without dispose
    const dropped = await (async () => factoryOf(await store.owned({ a: 1 })).key)()
    report.droppedEvicted = await until(async () => !(await store.exists(dropped)))
    // an owned proxy collected while borrowed: its object waits for the borrow
    const [weak, ref, borrowedKey] = await (async () => {
      const owner = await store.owned({ b: 2 })
      return [new WeakRef(owner), borrow(owner), factoryOf(owner).key]
    })()
    report.ownerCollected = await until(() => weak.deref() === undefined)
    for (let i = 0; i < 20; i++) { globalThis.gc(); await tick() }
    report.keptWhileBorrowed = await store.exists(borrowedKey)
    report.borrowStillReads = ref.b === 2
    release(ref)
    report.evictedAfterRelease = await until(async () => !(await store.exists(borrowedKey)))
    // a borrow dropped without release gives its borrow back
    const owner = await store.owned({ c: 3 })
    ;(() => { borrow(owner) })()
    report.borrowGivenBack = await until(() => borrowCount(owner).shared === 0)
    await dispose(owner)
    // a moved owned proxy that is collected leaves the object to its new owner
    const moved = await (async () => { const o = await store.owned({ d: 4 }); encode(o); return factoryOf(o).key })()
    for (let i = 0; i < 40; i++) { globalThis.gc(); await tick() }
    report.movedKept = await store.exists(moved)
    await store.evict(moved)
    console.log(JSON.stringify(report))
  `
  const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  t.equal(child.status, 0, child.stderr)
  const report = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as Record<string, boolean>
  t.same(
    report,
    { droppedEvicted: true, ownerCollected: true, keptWhileBorrowed: true, borrowStillReads: true, evictedAfterRelease: true, borrowGivenBack: true, movedKept: true },
    'collected owners evict (after their last borrow), collected borrows give back, moved ones do not evict',
  )
})

// Through real tasks: the file connector, which every worker reaches.
const files = new Store(`ownership-tasks-${process.pid}`, new FileConnector({ directory: join(scratch, 'objects') }))
t.teardown(() => files.close())
const fileExists = (proxy: unknown) => files.exists(factoryOf(proxy).key)

for (const kind of EXECUTOR_KINDS)
  t.test(`${kind}: borrows in tasks released on settle, owned proxies moved into and out of tasks`, async (t) => {
    const kernel = await startKernel(t, kind)
    const owned = await files.owned(new Float64Array(1000).fill(2))

    const seen = await submitScoped(apps.readBorrow.with({ dfk: kernel }), borrow(owned))
    t.same(seen, { kind: 'ref', resolved: true, sum: 2000 }, 'the task got a resolved borrow')
    t.same(borrowCount(owned), { shared: 0, mut: 0 }, 'the borrow was released when the future settled')

    const failed = await failure(() => submitScoped(apps.failAfterRead.with({ dfk: kernel }), borrow(owned)))
    t.match(failed.message, 'failed after reading 1000 values')
    t.same(borrowCount(owned), { shared: 0, mut: 0 }, 'released when the task failed too')

    t.equal(await submitScoped(apps.fillThrough.with({ dfk: kernel }), mutBorrow(owned), 7), 'mut', 'the task got a mutable borrow')
    t.equal(borrowCount(owned).mut, 0)
    t.equal(owned[0], 7, 'its update reached the owner')

    const made = await apps.makeOwned.with({ dfk: kernel })(files.toConfig(), 10, 3)
    t.equal(ownershipOf(made), 'owned', 'an owned proxy returned by a task arrives owned')
    t.equal(made.reduce((a, b) => a + b, 0), 30)
    await dispose(made)
    t.notOk(await fileExists(made), 'the caller disposes it: evicted')

    const moved = await apps.consumeOwned.with({ dfk: kernel })(owned, true)
    t.same(moved, { kind: 'owned', sum: 7000 }, 'an owned proxy passed to a task arrives owned')
    t.equal((await failure(() => owned[0])).rule, 'moved', 'the sender gave it up')
    t.notOk(await fileExists(owned), 'the task disposed it: evicted')
  })

t.test('the stage pattern of docs/proxy.md: outputs owned, borrowed by the next stage, disposed after it', async (t) => {
  const kernel = await startKernel(t, 'threads')
  const directory = join(scratch, 'stages')
  const stages = new Store(`ownership-stages-${process.pid}`, new FileConnector({ directory }))
  t.teardown(() => stages.close())
  const step = apps.stage.with({ dfk: kernel })
  let previous: OwnedProxy<Uint8Array>[] = []
  for (const [count, bytes] of [
    [4, 1000],
    [2, 10],
    [1, 5],
  ] as const) {
    const outputs = await Promise.all(Array.from({ length: count }, () => submitScoped(step, stages.toConfig(), previous.map((p) => borrow(p)), bytes)))
    for (const p of previous) t.same(borrowCount(p), { shared: 0, mut: 0 }, 'every borrow of the last stage was released')
    await Promise.all(previous.map((p) => dispose(p)))
    previous = outputs
  }
  t.equal(previous[0]![0], 20, 'the last stage read both outputs of the one before')
  await Promise.all(previous.map((p) => dispose(p)))
  t.same(readdirSync(directory), [], 'nothing left in the store')
})
