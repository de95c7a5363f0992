import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { clone, dispose, factoryOf, FileConnector, intoOwned, LocalConnector, MultiConnector, resolve, Store, type OwnedProxy } from 'tsflow/proxy'
// The codec, to send an owned proxy as a task would (it arrives as a new owner elsewhere).
import { decode, encode } from '../../dist/serialize/codec.js'

// clone puts the copy with the original's tags, so a multi connector routes it by the same policy
// (a copy of a checkpoint goes where checkpoints go), also after the owner travelled.

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-multi-clone-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

function tagged(t: Test): { store: Store; shared: FileConnector; node: LocalConnector } {
  const shared = new FileConnector({ directory: join(scratch, `shared-${t.name.length}-${Math.random().toString(36).slice(2)}`) })
  const node = new LocalConnector()
  const multi = new MultiConnector({
    connectors: {
      // Only objects tagged 'shared' go to the shared file system; everything else stays local.
      shared: { connector: shared, policy: { requireTags: ['shared'], priority: 1 } },
      node: { connector: node },
    },
  })
  const store = new Store(`multi-clone-${process.pid}-${Math.random().toString(36).slice(2)}`, multi)
  t.teardown(() => store.close())
  return { store, shared, node }
}

const via = (proxy: unknown) => factoryOf(proxy).key.via

t.test('a clone of a tagged owned proxy goes to the same child, resolved or not', async (t) => {
  const { store, node } = tagged(t)
  const owned = await store.owned({ weights: [1, 2, 3] }, { tags: ['shared'] })
  t.equal(via(owned), 'shared', 'the original went by its tag')
  t.same(factoryOf(owned).tags, ['shared'], 'the owned proxy carries its tags')

  const fromBytes = await clone(owned)
  t.equal(via(fromBytes), 'shared', 'a clone from the stored bytes is put with the tags')
  await resolve(owned)
  const fromTarget = await clone(owned)
  t.equal(via(fromTarget), 'shared', 'a clone from the resolved target too')
  t.same(fromTarget.weights, [1, 2, 3])
  const ofClone = await clone(fromTarget)
  t.equal(via(ofClone), 'shared', 'and a clone of a clone')
  t.equal(node.size, 0, 'nothing went to the untagged child')

  const untagged = await store.owned({ small: true })
  t.equal(via(await clone(untagged)), 'node', 'an untagged object is cloned untagged')
  t.equal(factoryOf(untagged).tags, undefined, 'and its factory has no tags field')
  for (const proxy of [owned, fromBytes, fromTarget, ofClone, untagged]) await dispose(proxy as OwnedProxy<unknown>)
})

t.test('the tags travel with the owner: a clone made where it arrived keeps them', async (t) => {
  const { store } = tagged(t)
  const owned = await store.owned({ stage: 2 }, { tags: ['shared'] })
  // Encoding moves ownership; the decoded proxy is the new owner, as in a task's process.
  const arrived = decode(encode([owned])) as OwnedProxy<{ stage: number }>[]
  const copy = await clone(arrived[0]!)
  t.equal(via(copy), 'shared')
  t.equal(copy.stage, 2)
  await dispose(copy)
  await dispose(arrived[0]!)
})

t.test('a plain proxy made with tags, taken into ownership, clones with them', async (t) => {
  const { store } = tagged(t)
  const plain = await store.proxy({ x: 1 }, { tags: ['shared'] })
  const owned = intoOwned(plain)
  const copy = await clone(owned)
  t.equal(via(copy), 'shared')
  await dispose(copy)
  await dispose(owned)
})
