// Smoke test of bench/funcx (the compiled entry in out/): latency, cold-start, instantiation and
// batching at tiny sizes; every results.jsonl line carries the experiment, the machine, tsflow's
// version and the config's describe(), and each run draws its SVG.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { TSFLOW_VERSION } from 'tsflow'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const entry = join(root, 'out/bench/funcx.js')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-funcx-a-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

type Row = Record<string, unknown>

let runs = 0
async function funcx(experiment: string, ...args: string[]): Promise<{ stdout: string; rows: Row[]; out: string }> {
  const out = join(scratch, `${experiment}-${runs++}`)
  const { stdout } = await promisify(execFile)(process.execPath, [entry, experiment, '--history', 'false', '--out', out, ...args], { timeout: 120_000 })
  const rows = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Row)
  return { stdout, rows, out }
}

function checkRows(t: Test, rows: Row[], experiment: string): void {
  t.ok(rows.length > 0, 'lines written')
  for (const row of rows) {
    t.equal(row.experiment, experiment)
    t.equal(row.tsflow, TSFLOW_VERSION)
    t.type(row.loadavg, 'number')
    t.match(row.machine, { cores: Number, node: process.version, tsflow: TSFLOW_VERSION })
    t.ok(Array.isArray(row.config) && (row.config as unknown[]).length > 0, 'the config described')
  }
}

// The bench's own check: the EndpointExecutor and the `tsflow endpoint` CLI both in this build.
const endpointMissing = async () => {
  const { endpointUnavailable } = (await import(join(root, 'out/bench/funcx/endpoint.js'))) as typeof import('../../bench/funcx/endpoint.js')
  return endpointUnavailable()
}

t.test('latency: a priming call then --calls, per target; CDF plot', async (t) => {
  const { stdout, rows, out } = await funcx('latency', '--calls', '20')
  checkRows(t, rows, 'latency')
  const htex = rows.find((row) => row.target === 'htex')!
  t.equal((htex.latencies_ms as number[]).length, 20)
  t.ok(Number(htex.median_ms) > 0 && Number(htex.median_ms) <= Number(htex.p95_ms) && Number(htex.p95_ms) <= Number(htex.p99_ms))
  t.match(htex.config, [{ class: 'HighThroughputExecutor', workersPerNode: 1 }])
  t.match(readFileSync(join(out, 'latency.svg'), 'utf8'), /^<svg/)
  if (await endpointMissing()) {
    t.match(stdout, /endpoint: skipped \((EndpointExecutor is not in this build|no endpoint CLI at)/, 'the endpoint target skips with a message until the endpoint code is on main')
  } else {
    const endpoint = rows.find((row) => row.target === 'endpoint')
    t.ok(endpoint, 'the endpoint target measured')
    t.equal((endpoint?.latencies_ms as number[] | undefined)?.length, 20)
    t.match(endpoint?.config, [{ class: 'EndpointExecutor' }])
  }
  t.match(stdout, /latency htex: 20 calls, median [\d.]+ ms/)
})

t.test('cold-start: fresh kernels to the first result; a distribution plot; plot <dir> redraws it', async (t) => {
  const { rows, out, stdout } = await funcx('cold-start', '--repeat', '2')
  checkRows(t, rows, 'cold-start')
  const htex = rows.filter((row) => row.target === 'htex')
  t.equal(htex.length, 2)
  for (const row of htex) t.ok(Number(row.ms) > 0 && Math.abs(Number(row.ms) - Number(row.load_ms) - Number(row.first_call_ms)) < 0.01, 'load + first call')
  if (await endpointMissing()) t.match(stdout, /endpoint: skipped/)
  else t.equal(rows.filter((row) => row.target === 'endpoint').length, 2)
  rmSync(join(out, 'cold-start.svg'))
  const replot = await promisify(execFile)(process.execPath, [entry, 'plot', out], { timeout: 60_000 })
  t.match(replot.stdout, /cold-start htex: 2 runs/)
  t.ok(existsSync(join(out, 'cold-start.svg')), 'redrawn')
})

t.test('instantiation: bare and in a container built here, the runtime recorded', async (t) => {
  // As root on Linux unshare alone can run the image; elsewhere without podman or bwrap, only bare.
  const noRuntime = await funcx('instantiation', '--runs', '3').then(
    () => undefined,
    (error: { stderr?: string }) => (/no container runtime works here/.test(error.stderr ?? '') ? error.stderr!.trim() : Promise.reject(error)),
  )
  const { rows, out } = noRuntime ? await funcx('instantiation', '--runs', '3', '--modes', 'bare') : await funcx('instantiation', '--runs', '3')
  checkRows(t, rows, 'instantiation')
  t.equal(rows.filter((row) => row.mode === 'bare').length, 3)
  for (const row of rows) t.ok(Number(row.ms) > 0)
  t.match(readFileSync(join(out, 'instantiation.svg'), 'utf8'), /^<svg/)
  const container = rows.filter((row) => row.mode === 'container')
  if (noRuntime) {
    await t.test(`container runs: ${noRuntime}`, { skip: noRuntime }, async () => {})
    return
  }
  t.equal(container.length, 3)
  t.match(container[0], { runtime: /^(podman|bwrap|unshare-chroot)$/, runtime_version: String, image_files: Number })
})

t.test('batching: one worker, k invocations per job through app.map; per job and per invocation', async (t) => {
  const { rows, out, stdout } = await funcx('batching', '--sizes', '1', '2', '4', '8', '--repeat', '2', '--warmup', '1')
  checkRows(t, rows, 'batching')
  t.same([...new Set(rows.map((row) => row.k))], [1, 2, 4, 8])
  t.equal(rows.length, 8)
  for (const row of rows) t.ok(Math.abs(Number(row.per_invocation_ms) - Number(row.job_ms) / Number(row.k)) < 0.001)
  t.match(rows[0]!.config, [{ class: 'HighThroughputExecutor', workersPerNode: 1 }])
  t.match(stdout, /per-invocation time [\d.]+x lower at k=8 than at k=1/)
  t.match(readFileSync(join(out, 'batching.svg'), 'utf8'), /^<svg/)
})

t.test('--config: a module\'s executors are what runs and what the lines describe; an exported object cannot start twice', async (t) => {
  const htex = join(root, 'dist/index.js')
  const fresh = join(scratch, 'fresh.mjs')
  writeFileSync(fresh, `import { HighThroughputExecutor } from ${JSON.stringify(htex)}\nexport default () => ({ runDir: ${JSON.stringify(join(scratch, 'runinfo'))}, executors: [new HighThroughputExecutor({ label: 'mine', maxWorkersPerNode: 1 })] })\n`)
  const { rows } = await funcx('latency', '--calls', '5', '--config', fresh)
  t.same(rows.map((row) => row.target), ['config'], 'with --config the target is the config')
  t.match(rows[0], { configFile: fresh, config: [{ label: 'mine', class: 'HighThroughputExecutor' }] })
  const once = join(scratch, 'once.mjs')
  writeFileSync(once, `import { HighThroughputExecutor } from ${JSON.stringify(htex)}\nexport const config = { runDir: ${JSON.stringify(join(scratch, 'runinfo'))}, executors: [new HighThroughputExecutor({ label: 'once', maxWorkersPerNode: 1 })] }\n`)
  const failed = await promisify(execFile)(process.execPath, [entry, 'cold-start', '--repeat', '2', '--history', 'false', '--out', join(scratch, 'once'), '--config', once]).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  )
  t.match(failed, { code: 2, stderr: /exports one config object whose executors cannot start twice; export a function/ })
})

t.test('usage errors exit 2 naming the problem', async (t) => {
  const run = (...args: string[]) =>
    promisify(execFile)(process.execPath, [entry, ...args]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    )
  t.match(await run('latencies'), { code: 2, stderr: /unknown experiment 'latencies'/ })
  t.match(await run('latency', '--calls', 'x', '--history', 'false', '--out', join(scratch, 'bad')), { code: 2, stderr: /--calls x: must be an integer/ })
  t.match(await run('batching', '--size', '4'), { code: 2, stderr: /unknown flag --size \(did you mean --sizes\?\)/ })
  t.match(await run('latency', '--config', join(scratch, 'missing.mjs')), { code: 2, stderr: /--config .*missing\.mjs: no such file/ })
})
