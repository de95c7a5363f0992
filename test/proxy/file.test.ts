import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { FileConnector, type ObjectKey } from 'tsflow/proxy'
import { connectorConformance } from './connector-conformance.js'

const root = mkdtempSync(join(tmpdir(), 'tsflow-file-connector-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const freshDir = () => join(root, `d${n++}`)

connectorConformance(t, {
  name: 'file',
  create: () => new FileConnector({ directory: freshDir() }),
  extra: async (t, connector) => {
    const c = connector as FileConnector
    const key = await c.put(Uint8Array.of(1, 2))
    t.same(readdirSync(c.directory).sort(), [key.id, `${key.id}.ready`], 'data file plus ready marker, no partial file left')
    await c.evict(key)
    t.same(readdirSync(c.directory), [], 'evict removes both')
  },
})

t.test('file: a crashed writer is never read', async (t) => {
  const c = new FileConnector({ directory: freshDir() })
  // Crashed before the rename: only a partial file.
  const early: ObjectKey = { id: 'crashed-early' }
  writeFileSync(join(c.directory, `${early.id}.partial-1-x`), 'half')
  t.notOk(await c.exists(early))
  await t.rejects(c.get(early), ObjectNotFound)
  // Crashed after the rename, before the marker: the data is complete but not announced.
  const late: ObjectKey = { id: 'crashed-late' }
  writeFileSync(join(c.directory, late.id), 'whole')
  t.notOk(await c.exists(late), 'no marker, no object')
  await t.rejects(c.get(late), ObjectNotFound)
  // A new put under the same key still works and wins.
  await c.put(Uint8Array.of(3), early)
  t.same([...(await c.get(early))], [3])
})

t.test('file: concurrent readers see a whole object or none while it is rewritten', async (t) => {
  const c = new FileConnector({ directory: freshDir() })
  const key: ObjectKey = { id: 'hot' }
  const size = 1 << 20
  let writing = true
  const writer = (async () => {
    for (let round = 1; round <= 20; round++) await c.put(new Uint8Array(size).fill(round), key)
    writing = false
  })()
  let whole = 0
  let missing = 0
  const reader = async () => {
    while (writing) {
      try {
        const bytes = await c.get(key)
        if (bytes.length !== size || bytes.some((b) => b !== bytes[0])) throw new Error(`torn read: ${bytes.length} bytes`)
        whole++
      } catch (error) {
        if (!(error instanceof ObjectNotFound)) throw error
        missing++
      }
    }
  }
  await Promise.all([writer, reader(), reader(), reader()])
  t.ok(whole + missing > 0, `readers ran (${whole} whole, ${missing} before the first put)`)
  t.same([...(await c.get(key)).subarray(0, 2)], [20, 20], 'the last put is what remains')
})

t.test('file: errors name the directory and key', async (t) => {
  const c = new FileConnector({ directory: freshDir() })
  await t.rejects(c.put(Uint8Array.of(1), { id: '../escape' }), { code: ErrorCode.CONNECTOR, message: new RegExp(`${c.directory}.*'\\.\\./escape'`) })
  await t.rejects(c.put(Uint8Array.of(1), { id: 'x.ready' }), ConnectorError)
  const blocker = join(root, 'a-file')
  writeFileSync(blocker, '')
  t.throws(() => new FileConnector({ directory: join(blocker, 'sub') }), { code: ErrorCode.CONNECTOR, message: /a-file\/sub/ })
  t.throws(() => new FileConnector({} as never), { code: ErrorCode.CONFIG, message: /connector\.directory/ })
})

t.test('file: a reader in another process sees whole objects only while this one rewrites', async (t) => {
  const c = new FileConnector({ directory: freshDir() })
  const key: ObjectKey = { id: 'shared' }
  const size = 1 << 20
  await c.put(new Uint8Array(size).fill(1), key)
  const connectorUrl = new URL('../../dist/proxy/index.js', import.meta.url).href
  // The child reads until told to stop, then prints what it saw.
  const script = `
    const { FileConnector } = await import(${JSON.stringify(connectorUrl)})
    const c = new FileConnector({ directory: ${JSON.stringify(c.directory)} })
    let whole = 0, torn = 0, stop = false
    process.stdin.on('data', () => { stop = true }).resume()
    while (!stop) {
      const b = await c.get({ id: 'shared' })
      if (b.length !== ${size} || b.some((x) => x !== b[0])) torn++
      else whole++
      if ((whole + torn) % 10 === 0) process.stdout.write('reads ' + (whole + torn) + '\\n')
    }
    console.log(JSON.stringify({ whole, torn }))
    process.exit(0)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  const exited = once(child, 'exit')
  const reads = () => Number(/reads (\d+)\n(?!.*reads)/s.exec(output)?.[1] ?? 0)
  // Keep rewriting until the reader has read many times during the rewrites (bounded).
  for (let round = 2; reads() < 100 && round < 5000 && child.exitCode === null; round++) {
    await c.put(new Uint8Array(size).fill(round % 250), key)
  }
  child.stdin.write('stop\n')
  await exited
  const seen = JSON.parse(output.trim().split('\n').at(-1)!) as { whole: number; torn: number }
  t.ok(seen.whole >= 100, 'the reader read while the file was being rewritten')
  t.equal(seen.torn, 0, `no torn read in the other process (${seen.whole} whole reads)`)
  t.ok(seen.whole > 0)
})
