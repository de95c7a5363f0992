// Smoke test of bench/workflow-memory (the compiled bench in out/): tiny sizes, short sleeps.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { FileConnector, Store } from 'tsflow/proxy'
import { isAlive, waitFor } from '../helpers/wait.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BENCH = join(root, 'out/bench/workflow-memory.js')
const RESULT_COLUMNS = 'executor,connector,data_management,stage_task_counts,stage_bytes_sizes,stage_repeat,task_sleep,workflow_start_timestamp,workflow_end_timestamp,workflow_makespan_s'
const MEMORY_COLUMNS = 'unix_timestamp,total_bytes,available_bytes,used_bytes,free_bytes'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-wm-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

function run(args: string[], onStdout?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BENCH, '--history', 'false', ...args], { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      onStdout?.(stdout, child)
    })
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

const runDirOf = (stdout: string) => /run directory (\S+)/.exec(stdout)?.[1] ?? ''
const samplerOf = (stdout: string) => Number(/memory sampler pid (\d+)/.exec(stdout)?.[1])

t.test('a run per mode: results.csv and results-memory.csv with the seed columns, a plot, an empty store', async (t) => {
  const modes = ['none', 'default-proxy', 'manual-proxy', 'owned-proxy', 'executor-proxy']
  const out = await run(['--run-dir', join(scratch, 'a'), '--executor-proxy-threshold', '1KB', '--data-management', ...modes, '--stage-task-counts', '2', '1', '--stage-bytes-sizes', '10KB', '2KiB', '1000', '--task-sleep', '0.01', '--repeat', '2', '--memory-profile-interval', '0.02', '--workers', '2'])
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /store empty: yes \(file\(.*\): \d+ objects stored during the runs, 0 left\)/)
  const dir = runDirOf(out.stdout)
  const results = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n')
  t.equal(results[0], RESULT_COLUMNS)
  t.equal(results.length, 1 + modes.length * 2, 'one line per run')
  const rows = results.slice(1).map((line) => line.split(','))
  t.same([...new Set(rows.map((r) => r[2]))], modes)
  t.ok(rows.every((r) => r[3] === '2-1' && r[4] === '10000-2048-1000' && r[5] === '1' && Number(r[6]) === 0.01), 'stages and human sizes as the seed writes them')
  t.ok(rows.every((r) => Number(r[9]) > 0 && Math.abs(Number(r[8]) - Number(r[7]) - Number(r[9])) < 1e-3), 'makespan = end - start')
  const memory = readFileSync(join(dir, 'results-memory.csv'), 'utf8').trim().split('\n')
  t.equal(memory[0], MEMORY_COLUMNS)
  t.ok(memory.length > 10, 'sampled while the runs went on')
  const [ts, total, , used] = memory[1]!.split(',').map(Number)
  t.ok(ts! > 1.7e9 && total! > used! && used! > 0, 'plausible samples')
  const tree = readFileSync(join(dir, 'results-process-memory.csv'), 'utf8').trim().split('\n')
  t.equal(tree[0], 'unix_timestamp,tree_rss_bytes,processes,stored_bytes')
  t.ok(tree.slice(1).some((line) => Number(line.split(',')[3]) > 0), 'the store files were seen holding data')
  t.ok(tree.slice(1).every((line) => Number(line.split(',')[1]) > 10e6 && Number(line.split(',')[2]) >= 1), 'the bench process (at least) in the tree')
  t.match(readFileSync(join(dir, 'memory.svg'), 'utf8'), /^<svg/)
  t.match(JSON.parse(readFileSync(join(dir, 'store-check.json'), 'utf8')), { check: 'store-empty', empty: true, objectsLeft: 0 })
  t.same(readdirSync(join(dir, 'objects')), [], 'no file left in the connector directory')
  t.match(out.stdout, /mode\s+runs\s+makespan mean/, 'the summary table')
  await waitFor(() => !isAlive(samplerOf(out.stdout)), 'the sampler to be gone')
})

t.test('shapes the stage rules refuse, and the sizes count', async (t) => {
  const bad = await run(['--stage-task-counts', '2', '3', '--stage-bytes-sizes', '1', '1', '1', '--run-dir', join(scratch, 'b')])
  t.equal(bad.code, 2, 'a usage error, before anything starts')
  t.match(bad.stderr, /stage 1 has 3 tasks but follows a stage of 2; a stage of several tasks must follow a stage of one task \(fan-out\) or of the same number \(1:1\)/)
  const { validateShape, stageInputs } = (await import(join(root, 'out/bench/workflow-memory/workflow.js'))) as typeof import('../../bench/workflow-memory/workflow.js')
  const { parseBytes } = (await import(join(root, 'out/bench/lib/args.js'))) as typeof import('../../bench/lib/args.js')
  const { refuseLocalWithWorkers } = (await import(join(root, 'out/bench/lib/data-flags.js'))) as typeof import('../../bench/lib/data-flags.js')
  t.throws(() => validateShape([1, 3], [1, 1]), /--stage-bytes-sizes needs 3 values/)
  t.throws(() => validateShape([], [1]), /at least one stage/)
  t.doesNotThrow(() => validateShape([1, 3, 3, 1, 4, 1], [1, 1, 1, 1, 1, 1, 1]), 'fan-out, 1:1, fan-in, fan-out, fan-in')
  t.same(stageInputs(['a'], 3), [['a'], ['a'], ['a']], 'fan-out: every task gets the one input')
  t.same(stageInputs(['a', 'b'], 2), [['a'], ['b']], '1:1')
  t.same(stageInputs(['a', 'b', 'c'], 1), [['a', 'b', 'c']], 'fan-in: one task gets every input')
  t.same(['1000', '10KB', '100MB', '2KiB', '1.5GB'].map((text) => parseBytes(text, '--x')), [1000, 10_000, 100_000_000, 2048, 1_500_000_000])
  t.throws(() => parseBytes('10XB', '--stage-bytes-sizes'), /10XB: not a size/)
  t.throws(() => refuseLocalWithWorkers('local', 'the tasks'), /--connector local keeps objects in this process only/)
})

// Both interruptions run at once: each mostly waits (for a run, for the sampler to start).
t.test('interrupted: Ctrl-C and SIGKILL leave no sampler, Ctrl-C evicts what was stored', async (t) => {
  let watching = false
  let sampler = 0
  const [interrupted, killed] = await Promise.all([
    run(
      ['--run-dir', join(scratch, 'd'), '--data-management', 'default-proxy', '--stage-task-counts', '1', '1', '--stage-bytes-sizes', '1KB', '1KB', '1KB', '--task-sleep', '0.3', '--repeat', '50', '--memory-profile-interval', '0.05'],
      (stdout, child) => {
        const dir = runDirOf(stdout)
        if (watching || !dir || !/run 1\/50/.test(stdout)) return
        watching = true
        // Interrupt while a run has objects stored (default-proxy keeps them until the run ends).
        const objects = join(dir, 'objects')
        void waitFor(() => existsSync(objects) && readdirSync(objects).some((name) => name.endsWith('.ready')), 'an object stored', 10_000, 5).then(() => child.kill('SIGINT'))
      },
    ),
    // SIGKILL: no clean-up runs; the sampler stops by itself when its IPC channel closes.
    run(['--run-dir', join(scratch, 'e'), '--data-management', 'none', '--stage-task-counts', '1', '--stage-bytes-sizes', '1KB', '1KB', '--task-sleep', '30', '--repeat', '1'], (stdout, child) => {
      if (sampler === 0 && samplerOf(stdout) > 0) {
        sampler = samplerOf(stdout)
        child.kill('SIGKILL')
      }
    }),
  ])
  t.equal(interrupted.code, 130, interrupted.stderr)
  t.match(interrupted.stderr, /SIGINT: stopping/)
  t.notMatch(interrupted.stderr, /ShutdownError/, 'the cancelled task is not reported as a failure')
  await waitFor(() => !isAlive(samplerOf(interrupted.stdout)), 'the sampler to be gone after Ctrl-C', 5000)
  t.same(readdirSync(join(runDirOf(interrupted.stdout), 'objects')), [], 'what the runs stored was evicted')
  t.equal(killed.code, null, 'killed')
  t.ok(sampler > 0)
  await waitFor(() => !isAlive(sampler), 'the orphaned sampler to exit', 5000)
})

t.test('the store check sees an object left behind', async (t) => {
  const { checkStoreEmpty, storeCheckText } = (await import(join(root, 'out/bench/lib/store-check.js'))) as typeof import('../../bench/lib/store-check.js')
  const directory = join(scratch, 'left')
  const store = new Store(`wm-check-${process.pid}`, new FileConnector({ directory }))
  t.teardown(() => store.close())
  const key = await store.put(new Uint8Array(8))
  const check = await checkStoreEmpty(store, store.connector.toConfig(), new Map([['k', key]]))
  t.match(check, { empty: false, objectsMade: 1, objectsLeft: 1 })
  t.match(storeCheckText(check), /store empty: NO \(file\(.*\): 1 of 1 objects left; entries left: /)
  await store.evict(key)
  t.match(await checkStoreEmpty(store, store.connector.toConfig(), new Map([['k', key]])), { empty: true, objectsLeft: 0 })
})
