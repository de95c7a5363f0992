// Where bash apps' stdout and stderr go: append by default, one descriptor for a file shared by
// both streams, a named error for a file that cannot be opened, and AUTO_LOGNAME. Run on the
// thread executor and on HTEX with worker processes.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  AUTO,
  AUTO_LOGNAME,
  BadStdStreamFile,
  BashExitFailure,
  DataFlowKernel,
  File,
  TaskState,
  autoLogPath,
  type Config,
} from 'tsflow'
import { makeExecutor } from './helpers/executors.js'
import * as apps from './fixtures/streams.js'

// The thread executor and HTEX with worker processes, built as every kind-parametrized test does.
const configs: [string, (runDir: string) => Config][] = (['threads', 'htex-processes'] as const).map((kind) => [
  kind,
  (runDir) => ({ runDir, executors: [makeExecutor(kind)] }),
])

const failure = (promise: PromiseLike<unknown>): Promise<unknown> => Promise.resolve(promise).then(() => undefined, (e: unknown) => e)

for (const [name, makeConfig] of configs) {
  t.test(name, async (t) => streamSuite(t, makeConfig))
}

async function streamSuite(t: Test, makeConfig: (runDir: string) => Config): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-streams-'))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  kernel = await new DataFlowKernel(makeConfig(join(scratch, 'runinfo'))).start()
  const dfk = kernel

  t.test('a plain path (string or File) appends; [path, "w"] truncates; [path, "a"] appends', async (t) => {
    const plain = join(scratch, 'plain.out')
    await apps.say.with({ dfk, stdout: plain })('first')
    await apps.say.with({ dfk, stdout: plain })('second')
    t.equal(readFileSync(plain, 'utf8'), 'first\nsecond\n', 'a second task appends to a plain path')

    const file = join(scratch, 'file.out')
    await apps.say.with({ dfk, stdout: new File(file) })('first')
    await apps.say.with({ dfk, stdout: new File(file) })('second')
    t.equal(readFileSync(file, 'utf8'), 'first\nsecond\n', 'a File appends too')

    const truncated = join(scratch, 'truncated.out')
    writeFileSync(truncated, 'old\n')
    await apps.say.with({ dfk, stdout: [truncated, 'w'] })('new')
    t.equal(readFileSync(truncated, 'utf8'), 'new\n', "'w' truncates")

    const appended = join(scratch, 'appended.err')
    writeFileSync(appended, 'old\n')
    await failure(apps.complain.with({ dfk, stderr: [appended, 'a'] })(2))
    t.equal(readFileSync(appended, 'utf8'), 'old\nfresh trouble\n', "'a' appends")
  })

  t.test('a failure quotes only what this task wrote to an appended stderr file', async (t) => {
    const errFile = join(scratch, 'shared.err')
    writeFileSync(errFile, 'stale trouble from an earlier task\n')
    const error = (await failure(apps.complain.with({ dfk, stderr: errFile })(3))) as BashExitFailure
    t.ok(error instanceof BashExitFailure, `BashExitFailure (got ${String(error)})`)
    t.match(error.message, /fresh trouble/)
    t.notMatch(error.message, /stale trouble/, 'the earlier content of the file is not this failure')
  })

  t.test('one file for both streams keeps both outputs in the order written', async (t) => {
    const expected = 'out-1\nerr-1\nout-2\nerr-2\nout-3\n'
    const plain = join(scratch, 'both.log')
    await apps.interleave.with({ dfk, stdout: plain, stderr: plain })()
    t.equal(readFileSync(plain, 'utf8'), expected, 'plain path for both')

    const truncating = join(scratch, 'both-w.log')
    writeFileSync(truncating, 'x'.repeat(200))
    await apps.interleave.with({ dfk, stdout: [truncating, 'w'], stderr: [truncating, 'w'] })()
    t.equal(readFileSync(truncating, 'utf8'), expected, "[path, 'w'] for both: truncated once, nothing clobbered")

    const linked = join(scratch, 'linked.log')
    symlinkSync(truncating, linked)
    await apps.interleave.with({ dfk, stdout: [truncating, 'w'], stderr: [linked, 'w'] })()
    t.equal(readFileSync(truncating, 'utf8'), expected, 'two names for one file share one descriptor')
  })

  t.test('a stream file that cannot be opened fails the task with BadStdStreamFile naming it', async (t) => {
    const directory = join(scratch, 'a-directory')
    mkdirSync(directory)
    const error = (await failure(apps.say.with({ dfk, stdout: directory })('x'))) as BadStdStreamFile
    t.ok(error instanceof BadStdStreamFile, `BadStdStreamFile (got ${String(error)})`)
    t.equal(error.code, 'E_BAD_STD_STREAM')
    t.equal(error.stream, 'stdout')
    t.equal(error.path, directory)
    t.match(error.message, new RegExp(`stdout file ${directory}: it is a directory`))

    const regular = join(scratch, 'regular-file')
    writeFileSync(regular, '')
    const under = join(regular, 'sub', 'err.log')
    const future = apps.say.with({ dfk, stderr: under })('x')
    const underError = (await failure(future)) as BadStdStreamFile
    t.ok(underError instanceof BadStdStreamFile, `BadStdStreamFile (got ${String(underError)})`)
    t.equal(underError.stream, 'stderr')
    t.equal(underError.path, under)
    t.match(underError.message, /stderr file .*regular-file\/sub\/err\.log: a component of its parent path is a regular file/)
    t.notMatch(underError.message, /EEXIST|mkdir/, 'not a bare system error')
    t.equal(future.state, TaskState.failed)
    // The parent itself is the regular file: mkdir used to fail with a bare EEXIST.
    const directlyUnder = join(regular, 'out.log')
    const eexist = (await failure(apps.say.with({ dfk, stdout: directlyUnder })('x'))) as BadStdStreamFile
    t.ok(eexist instanceof BadStdStreamFile, `BadStdStreamFile (got ${String(eexist)})`)
    t.equal(eexist.path, directlyUnder)
    t.notMatch(eexist.message, /EEXIST|mkdir/, 'not a bare system error')

    if (process.getuid?.() === 0) {
      t.comment('running as root: file permissions do not stop root, so the permission case is not checked')
    } else {
      const locked = join(scratch, 'locked')
      mkdirSync(locked)
      chmodSync(locked, 0o500)
      const denied = (await failure(apps.say.with({ dfk, stdout: join(locked, 'out.log') })('x'))) as BadStdStreamFile
      chmodSync(locked, 0o700)
      t.ok(denied instanceof BadStdStreamFile)
      t.match(denied.message, /permission denied/)
    }
  })

  t.test('a stream option of the wrong shape is a ConfigError naming the option', async (t) => {
    for (const bad of [42, ['x.log', 'r'], { path: 'x.log' }]) {
      t.throws(() => apps.say.with({ dfk, stdout: bad as never })('x'), { name: 'ConfigError', code: 'E_CONFIG', path: 'say.with().stdout' })
    }
  })

  t.test('missing parent directories are created', async (t) => {
    const deep = join(scratch, 'not', 'there', 'yet', 'out.log')
    t.equal(await apps.say.with({ dfk, stdout: deep })('made'), 0)
    t.equal(readFileSync(deep, 'utf8'), 'made\n')
  })

  t.test('AUTO_LOGNAME puts each task\'s streams under the run directory; future.stdout/stderr name them', async (t) => {
    t.equal(AUTO, AUTO_LOGNAME)
    const future = apps.say.with({ dfk, stdout: AUTO, stderr: AUTO })('automatic')
    const expectedOut = autoLogPath(dfk.runDir, future.taskId, 'say', 'stdout')
    t.equal(future.stdout, expectedOut, 'known as soon as the call returns')
    t.equal(future.stderr, autoLogPath(dfk.runDir, future.taskId, 'say', 'stderr'))
    t.match(future.stdout, new RegExp(`^${dfk.runDir}/task_logs/0000/task_${future.taskId}_say\\.stdout$`))
    await future
    t.equal(readFileSync(future.stdout!, 'utf8'), 'automatic\n')
    t.ok(existsSync(future.stderr!), 'the stderr file exists (empty)')

    const byDefault = apps.autoLogged.with({ dfk })('defaulted')
    await byDefault
    t.equal(readFileSync(byDefault.stdout!, 'utf8'), 'defaulted\n', 'an app-level AUTO_LOGNAME applies to every call')
    t.equal(readFileSync(byDefault.stderr!, 'utf8'), 'defaulted-on-stderr\n')
    const overridden = join(scratch, 'overridden.out')
    const own = apps.autoLogged.with({ dfk, stdout: overridden })('own')
    t.equal(own.stdout, overridden, "a call's own stdout wins over the app's")
    await own
    t.equal(readFileSync(overridden, 'utf8'), 'own\n')

    const retried = apps.failsOnce.with({ dfk, stdout: AUTO })()
    await retried
    t.equal(readFileSync(retried.stdout!, 'utf8'), 'try-0\ntry-1\n', 'every try appends to the task\'s one file')
  })

  t.test('future.stdout/stderr: the given path, or undefined when not redirected', async (t) => {
    const plain = join(scratch, 'given.out')
    const future = apps.say.with({ dfk, stdout: plain, stderr: [join(scratch, 'given.err'), 'w'] })('x')
    t.equal(future.stdout, plain)
    t.equal(future.stderr, join(scratch, 'given.err'))
    await future
    const bare = apps.say.with({ dfk })('to-the-worker-stdout')
    t.equal(bare.stdout, undefined)
    t.equal(bare.stderr, undefined)
    await bare
  })

  t.test('JS apps are not redirected: they see the resolved targets as this.stdout / this.stderr', async (t) => {
    const future = apps.whereAreMyStreams.with({ dfk, stdout: AUTO, stderr: join(scratch, 'js.err') })()
    const seen = await future
    t.equal(seen.stdout, future.stdout)
    t.equal(seen.stderr, join(scratch, 'js.err'))
    t.notOk(existsSync(future.stdout!), 'nothing was written for a JS app')
  })
}
