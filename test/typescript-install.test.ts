// tsflow as a user gets it: this checkout packed with `npm pack`, installed from the tarball into
// a fresh project, then TypeScript workflows run with `npx tsx` on every executor, tsflow-perf
// with a .ts config and no flags, and the README's examples in both forms. One install serves
// every case; it is slow (tsflow's native addon and node-pty build), hence the long timeout.
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { processesMentioning } from './perf/helpers.js'
import { waitFor } from './helpers/wait.js'

t.setTimeout(30 * 60_000)

const root = fileURLToPath(new URL('..', import.meta.url))
const INSTALL_TIMEOUT_MS = 20 * 60_000
const RUN_TIMEOUT_MS = 3 * 60_000

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command in its own process group, so a timeout kills npx, tsx and node alike. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = RUN_TIMEOUT_MS): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
      reject(new Error(`${command} ${args.join(' ')} took longer than ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`))
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Exit status 0, or the command's output in the failure message. */
function succeeded(t: Test, ran: Ran, what: string): void {
  t.equal(ran.code, 0, ran.code === 0 ? what : `${what}:\n${ran.stdout}\n${ran.stderr}`)
}

/** The environment of a user's shell: no npm script variables, no tap loader in NODE_OPTIONS. */
function userEnv(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key) && key !== 'INIT_CWD') env[key] = value
  env.NODE_OPTIONS = ''
  // tsx's cache and anything else a run leaves in the temp dir stay inside this test's directory.
  env.TMPDIR = tmp
  return env
}

const probe = await run('npm', ['--version'], root, userEnv(tmpdir()), 60_000).catch((error: Error) => ({ code: -1, stdout: '', stderr: error.message }))
if (probe.code !== 0) {
  t.plan(0, `npm is not available (${probe.stderr.trim() || `exit ${probe.code}`}): the install-from-tarball test needs it`)
} else {
  t.test('tsflow installed from a packed tarball into a fresh project', installTests)
}

async function installTests(t: Test): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-install-'))
  const project = join(dir, 'project')
  const tmp = join(dir, 'tmp')
  mkdirSync(project)
  mkdirSync(tmp)
  const env = userEnv(tmp)
  t.teardown(() => {
    // Anything still running from the project (a run that timed out) was started by this test.
    for (const pid of processesMentioning(project)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })

  t.ok(existsSync(join(root, 'dist/index.js')), 'dist/ is built (npm run build:ts) before it is packed')
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], root, env)
  succeeded(t, packed, 'npm pack')
  const tarball = join(dir, packed.stdout.trim().split('\n').at(-1)!)
  t.ok(existsSync(tarball), `the tarball ${tarball} exists`)

  // A user's package.json: ESM, and the dependencies whose install scripts npm may run (npm
  // versions that block dependency scripts by default need this; older ones ignore it).
  const allowScripts = { tsflow: true, [`file:${tarball}`]: true, 'node-pty': true, zeromq: true, 'msgpackr-extract': true, esbuild: false }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'tsflow-user', version: '1.0.0', private: true, type: 'module', allowScripts }, null, 2))
  const installed = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], project, env, INSTALL_TIMEOUT_MS)
  if (installed.code !== 0) {
    t.fail(`npm install of the tarball failed (exit ${installed.code}):\n${(installed.stdout + installed.stderr).split('\n').slice(-40).join('\n')}`)
    return
  }
  t.ok(existsSync(join(project, 'node_modules/tsflow/build/Release/tsflow_native.node')), "tsflow's native addon was built on install")
  t.ok(existsSync(join(project, 'node_modules/.bin/tsx')), 'tsx comes with tsflow')

  writeFileSync(join(project, 'flow.ts'), FLOW)
  for (const mode of ['threads', 'htex-processes', 'htex-threads'] as const) {
    t.test(`npx tsx flow.ts: a TypeScript workflow runs on ${mode}`, async (t) => {
      const ran = await run('npx', ['tsx', 'flow.ts', mode], project, env)
      succeeded(t, ran, 'exit 0')
      const line = ran.stdout.split('\n').find((l) => l.startsWith('{'))
      t.ok(line, `a result line in: ${ran.stdout}`)
      const where = JSON.parse(line ?? '{}') as { sum: number; pid: number; thread: boolean; main: number }
      t.equal(where.sum, 42, 'the task ran')
      t.equal(where.pid === where.main, mode === 'threads', mode === 'threads' ? 'ran in the workflow process' : 'ran in a worker process of a manager')
      t.equal(where.thread, mode !== 'htex-processes', mode === 'htex-processes' ? 'on the main thread of a worker process' : 'on a worker thread')
    })
  }

  t.test('npx tsflow-perf --config cfg.ts needs no extra flags', async (t) => {
    writeFileSync(join(project, 'cfg.ts'), PERF_CONFIG)
    const ran = await run('npx', ['tsflow-perf', '--config', 'cfg.ts', '--time', '1'], project, env)
    succeeded(t, ran, 'exit 0')
    t.match(ran.stdout, /tsflow-perf: [\d,.]+ tasks\/s \(ThreadPoolExecutor typed, 2 threads, argsize 0,/)
  })

  // The README's workflow, pasted by a user into flow.ts or flow.mjs.
  const forms: [string, string, string[]][] = [
    ['TypeScript (npx tsx flow.ts)', 'ensemble.ts', ['npx', 'tsx', 'flow.ts']],
    ['plain JavaScript (node flow.mjs)', 'ensemble.mjs', [process.execPath, 'flow.mjs']],
  ]
  for (const [form, example, [command, ...args]] of forms) {
    t.test(`the README example as a user runs it: ${form}`, async (t) => {
      const cwd = join(project, example.replace('.', '-'))
      mkdirSync(cwd)
      copyFileSync(join(root, 'examples', example), join(cwd, args.at(-1)!))
      const ran = await run(command!, args, cwd, env)
      succeeded(t, ran, 'exit 0')
      const match = /mean ([\d.]+) exit code 0 run directory /.exec(ran.stdout)
      t.ok(match, ran.stdout)
      t.equal(readFileSync(join(cwd, 'mean.txt'), 'utf8').trim(), match?.[1])
    })
  }

  t.test('no process of the project is left running', async (t) => {
    await waitFor(() => processesMentioning(project).length === 0, 'the interchange, managers and workers to exit', 30_000)
    t.pass('none left')
  })
}

const FLOW = `import { isMainThread } from 'node:worker_threads'
import { app, load, main, HighThroughputExecutor, ThreadPoolExecutor, type Config } from 'tsflow'

// TypeScript that type stripping alone cannot run: the loader must really compile it.
enum Mode { Threads = 'threads', HtexProcesses = 'htex-processes', HtexThreads = 'htex-threads' }
interface Where { sum: number; pid: number; thread: boolean }

const add = app((a: number, b: number): Where => ({ sum: a + b, pid: process.pid, thread: !isMainThread }))

function config(mode: Mode): Config {
  if (mode === Mode.Threads) return { executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }
  const workerMode = mode === Mode.HtexThreads ? 'threads' : 'processes'
  return { executors: [new HighThroughputExecutor({ workerMode, maxWorkersPerNode: 2 })] }
}

main(import.meta, async () => {
  const kernel = await load(config(process.argv[2] as Mode))
  try {
    console.log(JSON.stringify({ ...(await add(40, 2)), main: process.pid }))
  } finally {
    await kernel.cleanup()
  }
})
`

const PERF_CONFIG = `import { ThreadPoolExecutor, type Config } from 'tsflow'

enum Threads { Two = 2 }
const config: Config = { executors: [new ThreadPoolExecutor({ maxThreads: Threads.Two, label: 'typed' })] }
export default config
`
