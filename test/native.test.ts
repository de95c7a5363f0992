// Tests for the native addon through its typed seam (dist/native/index.js).
// Build first: `npx node-gyp rebuild && npx tsc -p tsconfig.build.json`.

import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'

import t, { type Test } from 'tap'

import { waitFor } from './helpers/wait.js'
import { NativeAddonUnavailable, NativeError } from 'tsflow'
import {
  createSharedMemory,
  getCpuAffinity,
  loadNativeAddonFrom,
  nativeAvailable,
  onlineCpuCount,
  openSharedMemory,
  setCpuAffinity,
  setParentDeathSignal,
  sharedMemorySize,
  unlinkSharedMemory,
} from 'tsflow/native'

const here = dirname(fileURLToPath(import.meta.url))
const packageRoot = dirname(here)
const fixture = join(here, 'fixtures', 'native-child.mjs')
const nativeModuleUrl = pathToFileURL(join(packageRoot, 'dist', 'native', 'index.js')).href
const { ENOENT, EEXIST, EINVAL, ESRCH } = osConstants.errno

/** A segment name no other run can collide with. */
function uniqueName(label: string): string {
  return `/tsflow-test-${process.pid}-${label}-${randomBytes(6).toString('hex')}`
}

/** Teardown helper: the segment may already be gone, which is fine. */
function unlinkQuietly(name: string): void {
  try {
    unlinkSharedMemory(name)
  } catch (error) {
    if (!(error instanceof NativeError && error.errno === ENOENT)) throw error
  }
}


interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Spawns the fixture under plain node; the test's teardown kills it if it is still alive. */
function spawnFixture(
  test: Test,
  args: string[],
): { child: ChildProcess; exited: () => boolean; result: Promise<ChildResult> } {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  test.teardown(() => {
    if (isRunning(child)) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  let done = false
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const result = new Promise<ChildResult>((resolve, reject) => {
    child.once('error', reject)
    // 'close' (not 'exit') so stdout and stderr are complete.
    child.once('close', (code, signal) => {
      done = true
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, exited: () => done, result }
}

function cpusAllowedList(status: string): string | undefined {
  return status
    .split('\n')
    .find((line) => line.startsWith('Cpus_allowed_list:'))
    ?.slice('Cpus_allowed_list:'.length)
    .trim()
}

t.test('the addon is built and loads', async (t) => {
  t.equal(nativeAvailable(), true)
  const binding = loadNativeAddonFrom(packageRoot)
  for (const fn of ['shmCreate', 'shmOpen', 'shmUnlink', 'shmSize', 'getAffinity', 'setAffinity', 'onlineCpus']) {
    t.type((binding as unknown as Record<string, unknown>)[fn], 'function', fn)
  }
})

t.test('shared memory is shared between two real processes', async (t) => {
  const name = uniqueName('xproc')
  t.teardown(() => unlinkQuietly(name))
  // Not a page multiple, so the child's size check proves it sees the exact size.
  const layout = {
    size: 10_000,
    childDoneIndex: 0,
    parentAckIndex: 1,
    patternOffset: 64,
    patternLength: 3000,
    replyOffset: 5000,
  }

  const buf = createSharedMemory(name, layout.size)
  t.equal(buf.length, layout.size, 'the Buffer spans the whole segment')
  t.ok(buf.every((byte) => byte === 0), 'a new segment is zero-filled')
  t.equal(sharedMemorySize(name), layout.size)
  for (let i = 0; i < layout.patternLength; i++) buf[layout.patternOffset + i] = (i * 31 + 7) & 0xff

  const flags = new Int32Array(buf.buffer, buf.byteOffset, 2)
  const { child, exited, result } = spawnFixture(t, ['shm', name, JSON.stringify(layout)])
  // The child keeps running until it sees our ack in the segment, so the reply below is
  // read from live shared memory, not left behind by a process that has exited.
  await waitFor(() => Atomics.load(flags, layout.childDoneIndex) === 1 || exited(), 'the child to reply')
  t.equal(Atomics.load(flags, layout.childDoneIndex), 1, 'the child raised its flag in our Buffer')
  t.ok(isRunning(child), 'the child is still alive while we read its reply')
  const expected = `reply from ${child.pid}`
  t.equal(buf.toString('utf8', layout.replyOffset, layout.replyOffset + expected.length), expected)
  Atomics.store(flags, layout.parentAckIndex, 1)

  const { code, signal, stdout, stderr } = await result
  t.equal(code, 0, `the child exited 0 (signal ${signal}; stderr: ${stderr.trim() || 'empty'})`)
  t.same(JSON.parse(stdout), { pid: child.pid, size: layout.size, reply: expected })
})

t.test('opening a missing segment fails with ENOENT and names it', async (t) => {
  const name = uniqueName('missing')
  const error = t.throws(() => openSharedMemory(name), NativeError) as NativeError
  t.equal(error.errno, ENOENT)
  t.equal(error.syscall, 'shm_open')
  t.equal(error.code, 'E_NATIVE')
  t.match(error.message, `shared memory segment '${name}' does not exist`)
  t.match(error.message, /\(shm_open: No such file or directory\)$/)

  const sizeError = t.throws(() => sharedMemorySize(name), NativeError) as NativeError
  t.equal(sizeError.errno, ENOENT)
  t.match(sizeError.message, name)
})

t.test('creating an existing segment fails with EEXIST and leaves it intact', async (t) => {
  const name = uniqueName('exists')
  t.teardown(() => unlinkQuietly(name))
  const first = createSharedMemory(name, 4096)
  first[0] = 99
  const error = t.throws(() => createSharedMemory(name, 8192), NativeError) as NativeError
  t.equal(error.errno, EEXIST)
  t.equal(error.syscall, 'shm_open')
  t.match(error.message, `shared memory segment '${name}' already exists`)
  t.equal(sharedMemorySize(name), 4096, 'the failed create did not resize the segment')
  t.equal(openSharedMemory(name)[0], 99, 'nor remove or clear it')
})

t.test('unlink removes the name but not live mappings', async (t) => {
  const name = uniqueName('unlink')
  t.teardown(() => unlinkQuietly(name))
  const a = createSharedMemory(name, 4096)
  const b = openSharedMemory(name)
  t.not(a, b)
  a.write('hello', 0)
  t.equal(b.toString('utf8', 0, 5), 'hello', 'two mappings in one process see the same bytes')

  unlinkSharedMemory(name)
  const error = t.throws(() => openSharedMemory(name), NativeError) as NativeError
  t.equal(error.errno, ENOENT, 'open after unlink fails')
  t.match(error.message, name)

  b.write('world', 0)
  t.equal(a.toString('utf8', 0, 5), 'world', 'existing mappings keep working after unlink')

  const again = t.throws(() => unlinkSharedMemory(name), NativeError) as NativeError
  t.equal(again.errno, ENOENT)
  t.match(again.message, `cannot unlink shared memory segment '${name}': it does not exist`)

  const reused = createSharedMemory(name, 4096)
  t.equal(reused[0], 0, 'the name can be reused for a fresh segment')
})

t.test('a zero-size segment is reported, not mapped', { skip: !existsSync('/dev/shm') && 'no /dev/shm' }, async (t) => {
  const name = uniqueName('empty')
  t.teardown(() => unlinkQuietly(name))
  // What another process sees between its creator's shm_open and ftruncate.
  writeFileSync(join('/dev/shm', name.slice(1)), '', { mode: 0o600, flag: 'wx' })
  t.equal(sharedMemorySize(name), 0)
  const error = t.throws(() => openSharedMemory(name), NativeError) as NativeError
  t.equal(error.syscall, 'mmap')
  t.equal(error.errno, EINVAL)
  t.match(error.message, `shared memory segment '${name}' has size 0`)
})

t.test('bad names and sizes are rejected before any system call', async (t) => {
  const badNames: [unknown, ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, RegExp][] = [
    [42, TypeError, /name must be a string/],
    ['tsflow-x', TypeError, /must start with '\/'/],
    ['/', TypeError, /at least one character after the leading '\/'/],
    ['/a/b', TypeError, /must not contain '\/' after the leading one/],
    ['/..', TypeError, /not a valid shared memory name/],
    ['/a\0b', TypeError, /NUL/],
    [`/${'x'.repeat(255)}`, RangeError, /256 bytes long .*at most 255/],
    [`/${'é'.repeat(128)}`, RangeError, /257 bytes long/],
  ]
  const operations: [string, (name: never) => unknown][] = [
    ['createSharedMemory', (name) => createSharedMemory(name, 4096)],
    ['openSharedMemory', (name) => openSharedMemory(name)],
    ['unlinkSharedMemory', (name) => unlinkSharedMemory(name)],
    ['sharedMemorySize', (name) => sharedMemorySize(name)],
  ]
  for (const [name, type, message] of badNames) {
    for (const [label, operation] of operations) {
      t.throws(() => operation(name as never), type, `${label}(${JSON.stringify(name)}) -> ${type.name}`)
      t.throws(() => operation(name as never), { message }, `${label}(${JSON.stringify(name)}) explains why`)
    }
  }
  // A 255-byte name passes validation, so this reaches the OS and fails only as missing.
  const longest = t.throws(() => sharedMemorySize(`/${'x'.repeat(254)}`), NativeError) as NativeError
  t.equal(longest.errno, ENOENT, 'a 255-byte name is allowed')
})

t.test('bad sizes are rejected', async (t) => {
  const name = uniqueName('size')
  t.teardown(() => unlinkQuietly(name))
  const cases: [unknown, ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, RegExp][] = [
    ['4096', TypeError, /size must be a number of bytes, got string/],
    [0, RangeError, /size must be a positive integer number of bytes, got 0/],
    [-1, RangeError, /got -1/],
    [1.5, RangeError, /got 1\.5/],
    [Number.NaN, RangeError, /got NaN/],
    [Number.POSITIVE_INFINITY, RangeError, /got Infinity/],
    [2 ** 53, RangeError, /positive integer/],
  ]
  for (const [size, type, message] of cases) {
    t.throws(() => createSharedMemory(name, size as number), type, `size ${String(size)} -> ${type.name}`)
    t.throws(() => createSharedMemory(name, size as number), { message }, `size ${String(size)} explains why`)
  }
  const error = t.throws(() => sharedMemorySize(name), NativeError) as NativeError
  t.equal(error.errno, ENOENT, 'no rejected call created the segment')
})

t.test('CPU affinity', async (t) => {
  const online = onlineCpuCount()
  t.ok(Number.isInteger(online) && online >= 1, `onlineCpuCount() is a positive integer (${online})`)

  const before = getCpuAffinity()
  t.ok(before.length >= 1, `the test runner's thread may run on ${before.join(',')}`)
  t.ok(before.every((cpu) => Number.isInteger(cpu) && cpu >= 0), 'indices are non-negative integers')
  t.same([...before].sort((x, y) => x - y), before, 'in ascending order')
  t.same(getCpuAffinity(0), before, 'tid defaults to 0, the calling thread')
  t.same(getCpuAffinity(process.pid), before, "the main thread's tid is the pid")

  t.test('pinning to CPU 0 in a child process', async (t) => {
    // A child, so the test runner itself is never pinned.
    const { result } = spawnFixture(t, ['affinity'])
    const { code, stdout, stderr } = await result
    t.equal(code, 0, `the child exited 0 (stderr: ${stderr.trim() || 'empty'})`)
    const report = JSON.parse(stdout) as { affinity: number[]; allowedList: string }
    t.same(report.affinity, [0], 'getCpuAffinity() in the child says CPU 0')
    t.equal(report.allowedList, '0', "the kernel's Cpus_allowed_list says CPU 0")
    t.same(getCpuAffinity(), before, 'the parent was not affected')
  })

  t.test('pinning a worker thread leaves the main thread alone', async (t) => {
    const name = uniqueName('worker')
    t.teardown(() => unlinkQuietly(name))
    const shared = createSharedMemory(name, 64)
    // Eval'd workers are CommonJS; import() brings in the ESM build, which must load its
    // own copy of the addon in this second context.
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      const { readFileSync } = require('node:fs')
      import(workerData.moduleUrl).then((native) => {
        const buf = native.openSharedMemory(workerData.name)
        buf.write('from worker', 0)
        native.setCpuAffinity([0])
        parentPort.postMessage({
          affinity: native.getCpuAffinity(),
          status: readFileSync('/proc/thread-self/status', 'utf8'),
        })
      }).catch((error) => parentPort.postMessage({ error: String((error && error.stack) || error) }))
      `,
      { eval: true, workerData: { moduleUrl: nativeModuleUrl, name } },
    )
    t.teardown(() => worker.terminate())
    const reply = await new Promise<{ affinity?: number[]; status?: string; error?: string }>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    t.equal(reply.error, undefined, 'the worker loaded the addon')
    t.same(reply.affinity, [0], 'the worker thread is pinned to CPU 0')
    t.equal(cpusAllowedList(reply.status ?? ''), '0', "the worker thread's Cpus_allowed_list says CPU 0")
    t.equal(shared.toString('utf8', 0, 11), 'from worker', "the worker's writes show in the main thread's mapping")
    t.same(getCpuAffinity(), before, 'the main thread keeps its affinity')
  })

  t.test('invalid CPU lists are rejected with the reason', async (t) => {
    t.throws(() => setCpuAffinity([online]), RangeError)
    t.throws(
      () => setCpuAffinity([0, online]),
      { message: `cpus[1] is CPU ${online}, which is not online: valid CPU indices are 0..${online - 1} (${online} online)` },
      'a CPU that is not online is named, with the valid range',
    )
    t.throws(() => setCpuAffinity([]), { name: 'RangeError', message: /at least one CPU/ })
    t.throws(() => setCpuAffinity([-1]), { name: 'RangeError', message: /cpus\[0\] must be a non-negative integer/ })
    t.throws(() => setCpuAffinity([0.5]), { name: 'RangeError', message: /got 0\.5/ })
    t.throws(() => setCpuAffinity(['0' as unknown as number]), { name: 'TypeError', message: /cpus\[0\]/ })
    t.throws(() => setCpuAffinity(0 as unknown as number[]), { name: 'TypeError', message: /cpus must be an array/ })
    t.throws(() => setCpuAffinity([0], -1), { name: 'RangeError', message: /tid must be 0/ })
    t.throws(() => getCpuAffinity(1.5), { name: 'RangeError', message: /tid/ })
    t.same(getCpuAffinity(), before, 'nothing was changed by the rejected calls')
  })

  t.test('an unknown thread id is a NativeError with ESRCH', async (t) => {
    // Above any pid_max Linux allows (4194304), so no such thread can exist.
    const error = t.throws(() => getCpuAffinity(2 ** 31 - 1), NativeError) as NativeError
    t.equal(error.errno, ESRCH)
    t.equal(error.syscall, 'sched_getaffinity')
    t.match(error.message, /thread 2147483647: no such thread/)
  })
})

t.test('a missing build gives NativeAddonUnavailable with instructions', async (t) => {
  const empty = t.testdir({})
  const error = t.throws(() => loadNativeAddonFrom(empty), NativeAddonUnavailable) as NativeAddonUnavailable
  t.equal(error.code, 'E_NATIVE_UNAVAILABLE')
  t.match(error.message, join(empty, 'build', 'Release', 'tsflow_native.node'), 'says what it looked for')
  t.match(error.message, join(empty, 'build', 'Debug', 'tsflow_native.node'))
  t.match(error.message, /not built/, 'says why')
  t.match(error.message, 'npm rebuild tsflow', 'says what to do')
  t.match(error.message, 'npx node-gyp rebuild')
  t.match(error.message, /python3, make and a C compiler/)
})

t.test('a broken build gives NativeAddonUnavailable with the loader error as cause', async (t) => {
  const dir = t.testdir({ build: { Release: { 'tsflow_native.node': 'this is not a shared object' } } })
  const error = t.throws(() => loadNativeAddonFrom(dir), NativeAddonUnavailable) as NativeAddonUnavailable
  t.match(error.message, /could not be loaded/)
  t.match(error.message, join(dir, 'build', 'Release', 'tsflow_native.node'))
  t.match(error.message, 'npm rebuild tsflow')
  t.type(error.cause, Error, 'the dlopen failure is kept as the cause')
})

t.test('setParentDeathSignal: a child busy in synchronous code dies with its SIGKILLed parent', { skip: !nativeAvailable() && 'the native addon is not built' }, async (t) => {
  const parent = spawn(process.execPath, [join(here, 'fixtures', 'orphan-parent.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] })
  let childPid = 0
  t.teardown(() => {
    for (const pid of [parent.pid, childPid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  let out = ''
  parent.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
  await waitFor(() => /^\d+\n/.test(out), 'the child to be armed', 20_000)
  childPid = Number(out.trim())
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  t.ok(alive(childPid), 'the child runs')
  parent.kill('SIGKILL')
  await waitFor(() => !alive(childPid), 'the child to die with its parent', 5000)
  t.pass('the child is gone')
  t.throws(() => setParentDeathSignal('SIGNOPE' as NodeJS.Signals), RangeError, 'an unknown signal name is refused')
})
