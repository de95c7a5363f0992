// LocalProvider: the provider conformance suite, then what is particular to local blocks
// (scripts on disk, workerInit, simulated nodes, signals, the exit hook).
// Build first: `npx tsc -p tsconfig.build.json`.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import t, { type Test } from 'tap'

import { ProviderError } from 'tsflow'
import { LocalProvider, providerOption, type BlockStatus, type LocalProviderOptions } from '../../dist/providers/index.js'
import { silentLogger } from '../../dist/util/logger.js'
import { providerConformance } from './conformance.js'
import { alive, killQuietly, readPids, tempDir, waitFor } from './helpers.js'

const distProviders = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'providers', 'index.js')).href

providerConformance(t, { name: 'local', create: (options) => new LocalProvider(options as LocalProviderOptions) })

interface Local {
  provider: LocalProvider
  dir: string
  scriptDir: string
  final(jobId: string): Promise<BlockStatus>
}

/** An initialized LocalProvider; teardown registered before anything starts. */
async function local(t: Test, options: LocalProviderOptions = {}, pidFiles: string[] = []): Promise<Local> {
  const { dir, remove } = tempDir('local')
  const provider = new LocalProvider({ maxBlocks: 4, ...options })
  t.teardown(async () => {
    await provider.shutdown()
    for (const file of pidFiles) for (const pid of readPids(join(dir, file))) killQuietly(pid)
    remove()
  })
  provider.validate('provider')
  const scriptDir = join(dir, 'scripts')
  await provider.init({ scriptDir, logger: silentLogger })
  return {
    provider,
    dir,
    scriptDir,
    async final(jobId) {
      let status: BlockStatus | undefined
      await waitFor(async () => {
        ;[status] = await provider.status([jobId])
        return status !== undefined && ['completed', 'failed', 'cancelled'].includes(status.state)
      }, `job ${jobId} to end`, 10_000)
      return status!
    },
  }
}

t.test('the job id is the pid of the block script, whose files sit in the script directory', async (t) => {
  const l = await local(t)
  const jobId = await l.provider.submit('echo $BASHPID; echo to-stderr >&2', '5')
  const status = await l.final(jobId)
  t.equal(status.state, 'completed')
  t.equal(readFileSync(join(l.scriptDir, 'block-5.out'), 'utf8').trim(), jobId)
  t.equal(readFileSync(join(l.scriptDir, 'block-5.err'), 'utf8').trim(), 'to-stderr')
  const script = readFileSync(join(l.scriptDir, 'block-5.sh'), 'utf8')
  t.match(script, /export TSFLOW_BLOCK_ID=5/)
  t.match(script, /echo \$BASHPID; echo to-stderr >&2/)
})

t.test('workerInit runs before the command, in the same shell', async (t) => {
  const l = await local(t, { workerInit: ['export GREETING=hello', 'cd "$T_DIR"'] })
  const jobId = await l.provider.submit('echo "$GREETING from $PWD" > greeting', 'w', { env: { T_DIR: l.dir } })
  t.equal((await l.final(jobId)).state, 'completed')
  t.equal(readFileSync(join(l.dir, 'greeting'), 'utf8'), `hello from ${l.dir}\n`)
})

t.test('a failing workerInit line fails the block, names the line, and the command never starts', async (t) => {
  const l = await local(t, { workerInit: 'echo preparing\nls /nonexistent-tsflow-dir\necho not-reached' })
  const jobId = await l.provider.submit('touch "$T_DIR/started"', 'wi', { env: { T_DIR: l.dir } })
  const status = await l.final(jobId)
  t.equal(status.state, 'failed')
  t.equal(status.exitCode, 2)
  t.match(status.message, /ended during workerInit with exit code 2 \(failing line: ls \/nonexistent-tsflow-dir\)/)
  t.match(status.message, /No such file or directory/)
  t.notOk(existsSync(join(l.dir, 'started')), 'the command did not run')
})

t.test('a missing command exits 127 with a hint', async (t) => {
  const l = await local(t)
  const status = await l.final(await l.provider.submit('tsflow-no-such-command --flag', 'nf'))
  t.equal(status.state, 'failed')
  t.equal(status.exitCode, 127)
  t.match(status.message, /command not found/)
  t.match(status.message, /block-nf\.err/, 'names the stderr file')
})

t.test('a block killed by a signal is failed, naming the signal', async (t) => {
  const l = await local(t)
  const status = await l.final(await l.provider.submit('kill -KILL $BASHPID', 'sig'))
  t.equal(status.state, 'failed')
  t.equal(status.signal, 'SIGKILL')
  t.match(status.message, /was killed by SIGKILL/)
  t.match(status.message, /stderr .* is empty/, 'says where else to look')
})

t.test('nodesPerBlock > 1 runs one copy per simulated node; cancel stops all of them', async (t) => {
  const l = await local(t, { nodesPerBlock: 3 }, ['pids'])
  const jobId = await l.provider.submit(
    'echo $BASHPID >> "$T_DIR/pids"; echo "$TSFLOW_RANK $TSFLOW_NODE_RANK" >> "$T_DIR/ranks"; exec sleep 1000',
    'n3',
    { env: { T_DIR: l.dir } },
  )
  await waitFor(() => readPids(join(l.dir, 'pids')).length === 3, 'three copies', 10_000)
  t.same(readFileSync(join(l.dir, 'ranks'), 'utf8').trim().split('\n').sort(), ['0 0', '1 1', '2 2'])
  const pids = readPids(join(l.dir, 'pids'))
  await l.provider.cancel([jobId])
  t.equal((await l.final(jobId)).state, 'cancelled')
  await waitFor(() => pids.every((pid) => !alive(pid)) && !alive(-Number(jobId)), 'every copy to be gone', 10_000)
  t.pass('all copies are gone')
})

t.test('when the script ends, processes it left behind in its group are stopped', async (t) => {
  const l = await local(t, {}, ['pids'])
  const jobId = await l.provider.submit('sleep 1000 & echo $! > "$T_DIR/pids"; exit 0', 'left', { env: { T_DIR: l.dir } })
  t.equal((await l.final(jobId)).state, 'completed')
  const [orphan] = readPids(join(l.dir, 'pids'))
  await waitFor(() => orphan !== undefined && !alive(orphan), 'the leftover sleep to be stopped', 10_000)
  t.pass('the leftover process is gone')
})

t.test('a block ignoring SIGTERM is killed after the grace period', async (t) => {
  const l = await local(t, {}, ['pids'])
  const jobId = await l.provider.submit(
    `trap '' TERM; echo $BASHPID > "$T_DIR/pids"; while true; do sleep 0.05; done`,
    'stubborn',
    { env: { T_DIR: l.dir } },
  )
  await waitFor(() => readPids(join(l.dir, 'pids')).length === 1, 'the block to start', 10_000)
  const started = Date.now()
  await l.provider.cancel([jobId])
  const status = await l.final(jobId)
  t.equal(status.state, 'cancelled')
  t.equal(status.signal, 'SIGKILL')
  t.ok(Date.now() - started >= 1500, 'SIGKILL came after the grace period')
})

t.test('a small cmdTimeoutMs shortens the grace period so SIGKILL still has time to work', async (t) => {
  const l = await local(t, { cmdTimeoutMs: 400 }, ['pids'])
  const jobId = await l.provider.submit(`trap '' TERM; echo $BASHPID > "$T_DIR/pids"; while true; do sleep 0.05; done`, 'quick', { env: { T_DIR: l.dir } })
  await waitFor(() => readPids(join(l.dir, 'pids')).length === 1, 'the block to start', 10_000)
  const started = Date.now()
  await l.provider.cancel([jobId])
  t.ok(Date.now() - started < 1500, 'cancel finished within the short timeout')
  t.match(await l.final(jobId), { state: 'cancelled', signal: 'SIGKILL' })
})

t.test('block ids are checked and must be unique among running blocks', async (t) => {
  const l = await local(t)
  await t.rejects(l.provider.submit('true', '../escape'), ProviderError)
  await t.rejects(l.provider.submit('true', ''), ProviderError)
  await t.rejects(l.provider.submit('true', 'e', { env: { 'BAD-NAME': 'x' } }), /not valid in bash/)
  await t.rejects(l.provider.submit('   ', 'e'), /cannot build the command of block e/)
  const jobId = await l.provider.submit('sleep 1000', 'dup')
  await t.rejects(l.provider.submit('true', 'dup'), /block dup is already running/)
  await l.provider.cancel([jobId])
})

t.test('providerOption accepts a LocalProvider or { type: "local" } and validates at the path', async (t) => {
  const fromSpec = providerOption({ type: 'local', maxBlocks: 3, launcher: 'simple' }, 'executors[0].provider')
  t.ok(fromSpec instanceof LocalProvider)
  t.equal(fromSpec.maxBlocks, 3)
  t.equal(fromSpec.launcher.type, 'simple')
  t.throws(() => providerOption({ type: 'moon' }, 'executors[0].provider'), { code: 'E_CONFIG', path: 'executors[0].provider.type' })
  t.throws(() => providerOption({ type: 'local', maxBlocks: -2 }, 'executors[0].provider'), { code: 'E_CONFIG', path: 'executors[0].provider.maxBlocks' })
  t.throws(() => providerOption(42, 'executors[0].provider'), { code: 'E_CONFIG', path: 'executors[0].provider' })
  const instance = new LocalProvider({ parallelism: 0.5 })
  t.equal(providerOption(instance, 'x'), instance)
  t.equal(instance.parallelism, 0.5)
})

t.test('a process that exits without shutdown() takes its blocks with it', async (t) => {
  const { dir, remove } = tempDir('exit-hook')
  t.teardown(() => {
    for (const pid of readPids(join(dir, 'pids'))) killQuietly(pid)
    remove()
  })
  const program = `
    const { LocalProvider } = await import(${JSON.stringify(distProviders)})
    const { silentLogger } = await import(${JSON.stringify(distProviders.replace('providers/index.js', 'util/logger.js'))})
    const provider = new LocalProvider()
    provider.validate('provider')
    await provider.init({ scriptDir: ${JSON.stringify(join(dir, 'scripts'))}, logger: silentLogger })
    await provider.submit('echo $BASHPID >> "$T_DIR/pids"; sleep 1000 & echo $! >> "$T_DIR/pids"; wait', '0', { env: { T_DIR: ${JSON.stringify(dir)} } })
    const started = Date.now()
    while (!(await import('node:fs')).readFileSync(${JSON.stringify(join(dir, 'pids'))}, { encoding: 'utf8', flag: 'a+' }).trim().includes('\\n')) {
      if (Date.now() - started > 10000) process.exit(2)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    process.exit(0)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'inherit', 'inherit'] })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0, 'the child ran its block and exited')
  const pids = readPids(join(dir, 'pids'))
  t.equal(pids.length, 2)
  await waitFor(() => pids.every((pid) => !alive(pid)), 'the orphaned block to be gone', 10_000)
  t.pass('the block died with the process that started it')
})
