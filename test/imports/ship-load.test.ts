// Kernel side to worker side (issue 9): packages traced and shipped by shipPackages into a real
// file store are imported by a child process whose directory has no node_modules at all, through
// activateImports: a real ESM package (nanoid), and two versions of one CommonJS package, each
// reached from its own dependent.
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { createPackMemo, findPackageRoot, shipPackages, traceImports } from 'tsflow/imports'
import { FileConnector, Store } from 'tsflow/proxy'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
}

t.test('a child without node_modules imports what shipPackages shipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-ship-load-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The workflow's install.
  const install = join(dir, 'workflow')
  const top = join(install, 'node_modules')
  cpSync(findPackageRoot('nanoid', repo)!, join(top, 'nanoid'), { recursive: true })
  write(join(top, 'uses-v1', 'package.json'), JSON.stringify({ name: 'uses-v1', version: '1.0.0', dependencies: { shared: '^1' } }))
  write(join(top, 'uses-v1', 'index.js'), "module.exports = 'v1 sees ' + require('shared')\n")
  write(join(top, 'uses-v2', 'package.json'), JSON.stringify({ name: 'uses-v2', version: '1.0.0', dependencies: { shared: '^2' } }))
  write(join(top, 'uses-v2', 'index.js'), "module.exports = 'v2 sees ' + require('shared')\n")
  write(join(top, 'shared', 'package.json'), JSON.stringify({ name: 'shared', version: '1.0.0' }))
  write(join(top, 'shared', 'index.js'), "module.exports = 'shared 1'\n")
  write(join(top, 'uses-v2', 'node_modules', 'shared', 'package.json'), JSON.stringify({ name: 'shared', version: '2.0.0' }))
  write(join(top, 'uses-v2', 'node_modules', 'shared', 'index.js'), "module.exports = 'shared 2'\n")
  const app = "import { nanoid } from 'nanoid'\nimport v1 from 'uses-v1'\nimport v2 from 'uses-v2'\nexport const seen = { id: nanoid(8).length, v1, v2 }\n"
  write(join(install, 'app.mjs'), app)

  const objects = join(dir, 'objects')
  const store = new Store(`ship-load-${process.pid}`, new FileConnector({ directory: objects }))
  t.teardown(() => store.close())
  const cacheDir = join(dir, 'node-cache')
  const manifest = await shipPackages(await traceImports(join(install, 'app.mjs')), store, { packCacheDir: join(dir, 'packs'), memo: createPackMemo(), cacheDir })
  t.same(manifest.packages.map((p) => `${p.name}@${p.version}`).sort(), ['nanoid@' + manifest.packages.find((p) => p.name === 'nanoid')!.version, 'shared@1.0.0', 'shared@2.0.0', 'uses-v1@1.0.0', 'uses-v2@1.0.0'].sort())

  // Where the task runs: the app module alone, no node_modules anywhere above it.
  const remote = join(dir, 'remote')
  write(join(remote, 'app.mjs'), app)
  const script = `
    const { activateImports } = await import(${JSON.stringify(pathToFileURL(join(repo, 'dist', 'imports', 'index.js')).href)})
    const manifest = JSON.parse(process.argv[1])
    await activateImports(manifest, { module: ${JSON.stringify(pathToFileURL(join(remote, 'app.mjs')).href)} })
    const app = await import(${JSON.stringify(pathToFileURL(join(remote, 'app.mjs')).href)})
    console.log(JSON.stringify(app.seen))
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(manifest)], { cwd: remote, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  t.equal(code, 0, `the child ran (stderr: ${stderr})`)
  t.same(JSON.parse(stdout.trim().split('\n').pop()!), { id: 8, v1: 'v1 sees shared 1', v2: 'v2 sees shared 2' }, 'each dependent gets its own version of shared')
})
