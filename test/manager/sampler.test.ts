// The manager's resource sampler against real /proc: a real child process burning CPU and
// holding memory, sampled through the same seam the worker pools fill (sampleTargets).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { pageSize, parseIo, parseStat, ResourceSampler, type SampleTarget } from '../../dist/manager/sampler.js'
import { silentLogger } from '../../dist/util/logger.js'
import type { ResourceSampleWire } from '../../dist/protocol/messages.js'
import { waitFor } from '../helpers/wait.js'

const MB = 2 ** 20

t.test('parsers read this process: a name with spaces and parentheses, io fields, the page size', async (t) => {
  const stat = parseStat('1234 (a (weird) name) S 1 1 1 0 -1 4194304 10 0 0 0 250 31 0 0 20 0 1 0 100 1000000 777 18446744073709551615')
  t.same(stat, { utime: 250, stime: 31, rssPages: 777 })
  t.equal(parseStat('garbage'), undefined)
  const own = parseStat(readFileSync('/proc/self/stat', 'latin1'))!
  t.ok(own.rssPages > 0 && own.utime + own.stime > 0, 'this process has pages and CPU time')
  t.same(parseIo('rchar: 5\nwchar: 6\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n'), { readBytes: 4096, writeBytes: 8192 })
  const page = pageSize()
  t.ok(page >= 4096 && (page & (page - 1)) === 0, `page size ${page} is a power of two`)
  const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024
  const statRss = parseStat(readFileSync('/proc/self/stat', 'latin1'))!.rssPages * page
  t.ok(Math.abs(statRss - rss) < 16 * MB, `RSS from stat (${statRss}) agrees with VmRSS (${rss})`)
})

t.test('a busy child: CPU counted from the try’s first sample, RSS as it is, a new try starts again', async (t) => {
  // Holds 150 MB (touched), then spins until killed.
  const child = spawn(process.execPath, ['-e', 'const b = Buffer.alloc(150 * 2 ** 20, 1); process.stdout.write("ready\\n"); let x = 0; for (;;) x += b[x % b.length]'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()))
  let target: SampleTarget = { taskId: 7, tryNumber: 1, proc: `/proc/${child.pid}` }
  const ticks: { timeMs: number; rows: ResourceSampleWire[] }[] = []
  const sampler = new ResourceSampler(50, { sampleTargets: (out) => out.push(target) }, (timeMs, rows) => ticks.push({ timeMs, rows }), silentLogger)
  t.teardown(() => sampler.stop())
  sampler.start()
  t.ok(sampler.running, 'its timer runs while started')
  await waitFor(() => ticks.length >= 6, 'six ticks')
  const first = ticks.map((tick) => tick.rows)
  t.ok(first.every((rows) => rows.length === 1 && rows[0]![0] === 7 && rows[0]![1] === 1), 'one row per tick, for the target')
  t.same(first[0]![0]!.slice(2, 4), [0, 0], "the try's first sample is its baseline")
  const cpu = first.map((rows) => rows[0]![2] + rows[0]![3])
  t.ok(cpu.every((v, i) => i === 0 || v >= cpu[i - 1]!), `CPU never decreases: ${cpu.join(', ')}`)
  t.ok(cpu.at(-1)! > 0, 'and grows')
  t.ok(first.every((rows) => rows[0]![4] >= 150 * MB), 'RSS includes the 150 MB held')

  // Another try on the same worker counts from its own first sample.
  target = { taskId: 7, tryNumber: 2, proc: target.proc }
  const seen = ticks.length
  await waitFor(() => ticks.length >= seen + 2, 'two more ticks')
  const retry = ticks.slice(seen).map((tick) => tick.rows[0]!)
  t.equal(retry[0]![1], 2)
  t.same(retry[0]!.slice(2, 4), [0, 0], 'a new try starts from 0 again')

  // A worker gone between the pool's answer and the read is skipped, and nothing is sent.
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  await waitFor(() => !readFileSafe(`/proc/${child.pid}/stat`), 'the child to be reaped')
  const before = ticks.length
  sampler.tick()
  t.equal(ticks.length, before, 'no message for a tick without samples')
  sampler.stop()
  t.notOk(sampler.running, 'stopped: no timer')
})

function readFileSafe(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
