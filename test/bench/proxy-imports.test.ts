// Smoke test of bench/proxy-imports (the compiled bench in out/): each benchmark at a tiny size.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BENCH = join(root, 'out/bench/proxy-imports.js')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-pi-test-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

interface Ran {
  code: number
  stdout: string
  stderr: string
}

function run(args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BENCH, ...args, '--history', 'false', '--run-dir', scratch, '--fs-root', scratch], { timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

function rowsOf(stdout: string): Record<string, unknown>[] {
  const file = /^results (\S+)$/m.exec(stdout)?.[1]
  if (!file) return []
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
}

function leftBehind(pid: string | undefined): string[] {
  return readdirSync(existsSync('/dev/shm') ? '/dev/shm' : tmpdir()).filter((name) => pid !== undefined && name.startsWith(`tsflow-bench-pi-${pid}-`))
}

t.test('scaling: file-system, local and pack on a small package, one first import per worker process, JSON lines and SVG', async (t) => {
  const ran = await run(['scaling', '--modules', 'ms', '--nodes', '2', '--tasks-per-node', '1', '--methods', 'file-system', 'local', 'pack'])
  t.equal(ran.code, 0, ran.stderr)
  const rows = rowsOf(ran.stdout)
  t.same(rows.map((r) => r.method), ['file-system', 'local', 'pack'])
  for (const row of rows) {
    t.match(row, { ntasks: 2, method: String, module: 'ms', nodes: 2, tasks_per_node: 1, sleep: 0, blocks: 2, loaded_from: String })
    for (const field of ['cumulative_time', 'launch_time', 'end_time', 'setup']) t.type(row[field], 'number', `${row.method}: ${field}`)
    t.equal((row.times as number[]).length, 2)
    t.ok((row.end_time as number) > (row.launch_time as number))
  }
  t.ok((rows[2]!.setup_detail as Record<string, number>).unpack_max! > 0, 'pack: the blocks timed their unpacking in workerInit')
  const dir = dirname(/^results (\S+)$/m.exec(ran.stdout)![1]!)
  t.match(readFileSync(join(dir, 'scaling.svg'), 'utf8'), /^<svg/)
  t.same(leftBehind(/tsflow-bench-pi-(\d+)-local/.exec(ran.stdout)?.[1]), [], 'no node-local directory left')
})

t.test('simulated: a generated package whose entry imports every file, with package_size', async (t) => {
  const ran = await run(['simulated', '--sizes', '0.05', '--nodes', '1', '--tasks-per-node', '1', '--methods', 'file-system', 'pack'])
  t.equal(ran.code, 0, ran.stderr)
  const rows = rowsOf(ran.stdout)
  t.equal(rows.length, 2)
  for (const row of rows) t.match(row, { package_size: 50, package_files: 52, module: 'tsflow-bench-sim-50', ntasks: 1 })
})

t.test('inference: a model by proxy and mathjs, the rows split over the workers', async (t) => {
  const ran = await run(['inference', '--samples', '40', '--hidden', '8', '--nodes', '1', '--tasks-per-node', '1', '--methods', 'file-system'])
  t.equal(ran.code, 0, ran.stderr)
  const [row] = rowsOf(ran.stdout)
  t.match(row, { benchmark: 'inference', method: 'file-system', ntasks: 1, samples: 40 })
  t.ok((row!.makespan as number) > 0)
})

t.test('lazy: the proxyImports option, cold then warm', async (t) => {
  const ran = await run(['simulated', '--sizes', '0.05', '--nodes', '1', '--tasks-per-node', '2', '--methods', 'lazy', 'lazy-warm'])
  t.equal(ran.code, 0, ran.stderr)
  const rows = rowsOf(ran.stdout)
  t.same(rows.map((r) => r.method), ['lazy', 'lazy-warm'])
  for (const row of rows) {
    t.notMatch(String(row.loaded_from), scratch, `${row.method}: the package was not loaded from the install`)
    t.ok((row.setup_detail as Record<string, number>).ship! >= 0, `${row.method}: shipping was timed`)
  }
})

t.test('cloud-burst: the host without the package cannot import it from its directory', { skip: process.getuid?.() === 0 ? false : 'needs root (network namespaces)' }, async (t) => {
  const ran = await run(['cloud-burst', '--modules', 'ms', '--sizes', '0.05', '--tasks-per-node', '1', '--methods', 'file-system', 'lazy'])
  t.match(ran.stdout, /file-system ms on \S+: fails as expected \(Cannot find package 'ms'/)
  t.equal(ran.code, 0, ran.stderr)
  const rows = rowsOf(ran.stdout).filter((r) => r.method === 'lazy')
  t.equal(rows.length, 2, 'ms and the simulated package')
  for (const row of rows) {
    t.match(row, { ok: true, installed_on_worker: false, round_trip: Number })
    t.notMatch(String(row.loaded_from), scratch, 'loaded from the node cache, not the (hidden) install')
  }
})
