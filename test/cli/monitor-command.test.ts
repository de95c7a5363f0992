// `tsflow monitor` (docs/monitoring.md "Dashboard") as a real process: it finds the database from
// a run directory, a runinfo directory, a file or the default ./runinfo, prints the URL, serves
// it, and exits 0 on SIGTERM and SIGINT leaving no process; bad input is exit 2 naming the path or
// option and what to do.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { WorkflowList } from 'tsflow/protocol'
import { writeSyntheticRun } from '../../bench/lib/monitoring-synthetic.js'
import { isAlive, waitFor } from '../helpers/wait.js'
import { cliEnv, scratchHome, TSFLOW_BIN, tsflow } from './helpers.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-monitor-cli-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const project = join(scratch, 'project')
const runinfo = join(project, 'runinfo')
const dbPath = join(runinfo, 'monitoring.db')
t.before(async () => {
  await writeSyntheticRun({ db: dbPath, runId: 'cli-run', tasks: 120, failEvery: 40 })
  mkdirSync(join(runinfo, '000'), { recursive: true })
})

/** Starts `tsflow monitor ...args`, resolves with the printed URL once it is listening. */
async function startMonitor(t: Test, home: string, args: string[], cwd = scratch) {
  const child = spawn(process.execPath, [TSFLOW_BIN, 'monitor', ...args], { cwd, env: cliEnv(home), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')))
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk) => (stdout += chunk))
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  await waitFor(() => /tsflow monitor: http:\/\/\S+\//.test(stdout) || child.exitCode !== null, `the URL on stdout (stderr: ${stderr})`)
  const url = /tsflow monitor: (http:\/\/\S+\/)/.exec(stdout)?.[1]
  if (!url) throw new Error(`tsflow monitor printed no URL: ${stdout}${stderr}`)
  return { child, url, exited, output: () => ({ stdout, stderr }) }
}

t.test('serves the database found from a run directory and stops on SIGTERM', async (t) => {
  const home = scratchHome(t)
  const monitor = await startMonitor(t, home, [join(runinfo, '000')])
  t.match(monitor.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'on 127.0.0.1, a free port')
  const list = (await (await fetch(new URL('/api/workflows', monitor.url))).json()) as WorkflowList
  t.equal(list.db, dbPath, 'the runinfo database beside the run directory')
  t.equal(list.workflows[0]!.tasks, 120)
  const pid = monitor.child.pid!
  monitor.child.kill('SIGTERM')
  t.equal(await monitor.exited, 0, 'exit 0 on SIGTERM')
  t.notOk(isAlive(pid), 'no process left')
})

t.test('finds runinfo/monitoring.db by default, from a runinfo directory, a project directory, a file; SIGINT stops it', async (t) => {
  const home = scratchHome(t)
  for (const [args, cwd] of [[[], project], [[runinfo], scratch], [[project], scratch], [[dbPath], scratch], [['--port', '0', '--host', '127.0.0.1', 'runinfo'], project]] as const) {
    const monitor = await startMonitor(t, home, [...args], cwd)
    const list = (await (await fetch(new URL('/api/workflows', monitor.url))).json()) as WorkflowList
    t.equal(list.db, dbPath, `tsflow monitor ${args.join(' ')} (in ${cwd === project ? 'the project' : 'elsewhere'})`)
    monitor.child.kill('SIGINT')
    t.equal(await monitor.exited, 0, 'exit 0 on SIGINT')
  }
})

t.test('bad input: exit 2 naming the path or option and what to do', async (t) => {
  const home = scratchHome(t)
  const none = await tsflow(home, ['monitor'], { cwd: scratch })
  t.equal(none.code, 2)
  t.match(none.stderr, new RegExp(`no monitoring database at ${join(scratch, 'runinfo', 'monitoring.db')}; run a workflow with \`monitoring: \\{ enabled: true \\}\``))
  const empty = join(scratch, 'empty-dir')
  mkdirSync(empty, { recursive: true })
  const dir = await tsflow(home, ['monitor', empty])
  t.equal(dir.code, 2)
  t.match(dir.stderr, new RegExp(`no monitoring database in ${empty} \\(looked for ${join(empty, 'monitoring.db')}`))
  const missing = await tsflow(home, ['monitor', join(scratch, 'nope.db')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /nope\.db does not exist; name a monitoring database/)
  const port = await tsflow(home, ['monitor', dbPath, '--port', '70000'])
  t.equal(port.code, 2)
  t.match(port.stderr, /--port must be a whole number from 0 to 65535 \(got '70000'\)/)
  const word = await tsflow(home, ['monitor', dbPath, '--port', 'http'])
  t.equal(word.code, 2)
  t.match(word.stderr, /--port must be/)
  const host = await tsflow(home, ['monitor', dbPath, '--host', '203.0.113.9'])
  t.equal(host.code, 2)
  t.match(host.stderr, /cannot listen on --host 203\.0\.113\.9/)
  const flag = await tsflow(home, ['monitor', '--prot', '1'])
  t.equal(flag.code, 2)
  t.match(flag.stderr, /unknown option --prot \(did you mean --port\?\)/)

  // a port in use
  const first = await startMonitor(t, home, [dbPath])
  const busy = await tsflow(home, ['monitor', dbPath, '--port', new URL(first.url).port])
  t.equal(busy.code, 2)
  t.match(busy.stderr, /port \d+ on 127\.0\.0\.1 is in use; choose another --port/)
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0)
})

t.test('--help, and tsflow --help lists monitor', async (t) => {
  const home = scratchHome(t)
  const help = await tsflow(home, ['monitor', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: tsflow monitor \[runDir\|db\] \[options\]/)
  t.match(help.stdout, /--port N/)
  t.match(help.stdout, /--host ADDR/)
  const top = await tsflow(home, ['--help'])
  t.match(top.stdout, /^ {2}monitor\s+serve the monitoring dashboard/m)
})
