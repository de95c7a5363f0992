import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { listSharedMemory, unlinkSharedMemory } from 'tsflow/native'

// StaticLifetime evicts its objects when the process calls process.exit(), which skips
// beforeExit: in an 'exit' handler, through the connectors' synchronous evictSync.

const root = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-static-exit-'))
const shmPrefix = `staticexit${process.pid}`
t.teardown(() => {
  rmSync(scratch, { recursive: true, force: true })
  for (const name of listSharedMemory(`tsflow-${shmPrefix}`)) unlinkSharedMemory(name)
})

const dataFiles = (directory: string) => readdirSync(directory).filter((name) => !name.endsWith('.ready'))
const segments = (prefix: string) => listSharedMemory(`tsflow-${prefix}-`)

function runScript(script: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 })
}

t.test('process.exit() evicts the static lifetime\'s objects in file, shm and multi(file, shm)', async (t) => {
  const directory = join(scratch, 'objects')
  const multiDirectory = join(scratch, 'multi')
  const child = runScript(`
    import { FileConnector, MultiConnector, ShmConnector, StaticLifetime, Store } from 'tsflow/proxy'
    const lifetime = new StaticLifetime()
    const file = new Store('file', new FileConnector({ directory: ${JSON.stringify(directory)} }))
    // unlinkOnExit off: the shm connector's own exit backstop must not be what removes them.
    const shm = new Store('shm', new ShmConnector({ prefix: '${shmPrefix}_a', unlinkOnExit: false }))
    const multi = new Store('multi', new MultiConnector({ connectors: {
      small: { connector: new FileConnector({ directory: ${JSON.stringify(multiDirectory)} }), policy: { maxSize: 100 } },
      big: { connector: new ShmConnector({ prefix: '${shmPrefix}_b', unlinkOnExit: false }) },
    } }))
    await file.proxy({ x: 1 }, { lifetime })
    await file.put('two', { lifetime })
    await shm.proxy({ y: 'shared' }, { lifetime })
    await multi.put('small', { lifetime })
    await multi.put('x'.repeat(1000), { lifetime })
    // Not in the lifetime: these must stay (the exit handler evicts only what it holds).
    await file.put('kept')
    await shm.put('kept')
    console.log('multi can evictSync:', typeof multi.connector.evictSync)
    setInterval(() => {}, 1000) // pending work: the event loop never runs dry, beforeExit never fires
    process.exit(3)
  `)
  t.equal(child.status, 3, `the exit code is the one given to process.exit (stderr: ${child.stderr})`)
  t.match(child.stdout, 'multi can evictSync: function', 'a multi over file and shm has evictSync')
  t.equal(dataFiles(directory).length, 1, 'of the file objects only the one outside the lifetime is left')
  t.equal(segments(`${shmPrefix}_a`).length, 1, 'of the shm objects only the one outside the lifetime is left')
  t.same(dataFiles(multiDirectory), [], "the multi connector's small object (file) is gone")
  t.same(segments(`${shmPrefix}_b`), [], 'and its large one (shm)')
})

t.test('a multi with a child that cannot evict synchronously has no evictSync', async (t) => {
  const { FileConnector, MultiConnector } = await import('tsflow/proxy')
  const asyncOnly = new FileConnector({ directory: join(scratch, 'async-only') })
  Object.defineProperty(asyncOnly, 'evictSync', { value: undefined })
  const multi = new MultiConnector({ connectors: { a: { connector: new FileConnector({ directory: join(scratch, 'a') }) }, b: { connector: asyncOnly } } })
  t.equal(multi.evictSync, undefined, 'so having evictSync always means it works')
})
