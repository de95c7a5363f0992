/**
 * A synthetic monitored workflow written through the real monitoring writer thread
 * (dist/monitoring/writer-thread.js, the one the kernel's recorder starts), in the recorder's own
 * batch format: for the dashboard's query benchmark (1,000,000 tasks) and for tests of the views
 * a thread-pool run does not fill (blocks, managers, resource samples).
 *
 * The run is deterministic: task i is submitted at start + i * submitGapMs, launched 1 ms later,
 * runs `durationOf(i)` ms on manager i % managers; every `failEvery`-th task fails its first try
 * and is retried once (its second try fails too when `i % (2 * failEvery) === 0`).
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { Rec, STATE_CODES, STATE_FIELDS, stateCode, type FromWriter, type MonitoringRecord, type ToWriter, type WriterData } from 'tsflow/protocol'

export interface SyntheticRun {
  readonly db: string
  readonly runId: string
  readonly tasks: number
  readonly apps?: readonly string[]
  readonly startMs?: number
  readonly submitGapMs?: number
  readonly failEvery?: number
  readonly managers?: number
  /** resource samples for tasks with i % sampleEvery === 0 (0: none) */
  readonly sampleEvery?: number
  /** leave the last `liveTail` tasks running and write no end record */
  readonly liveTail?: number
}

export interface SyntheticResult {
  readonly counts: Record<string, number>
  readonly written: number
  readonly endMs: number | undefined
}

export const durationOf = (i: number): number => 5 + ((i * 7919) % 97)

// The package's import condition (it has no require one): dist/index.js, beside dist/monitoring/.
const writerPath = (): string => join(dirname(fileURLToPath(import.meta.resolve('tsflow'))), 'monitoring', 'writer-thread.js')

/** Writes the run and resolves when the writer has committed and closed the database. */
export async function writeSyntheticRun(run: SyntheticRun): Promise<SyntheticResult> {
  const apps = run.apps ?? ['simulate', 'analyze', 'reduce']
  const start = run.startMs ?? Date.now() - 60_000
  const gap = run.submitGapMs ?? 1
  const failEvery = run.failEvery ?? 1000
  const managers = run.managers ?? 4
  const sampleEvery = run.sampleEvery ?? 0
  const live = run.liveTail ?? 0
  const data: WriterData = { db: run.db, retention: { maxAgeDays: undefined, maxRuns: undefined }, retentionEveryMs: 3_600_000 }
  const worker = new Worker(writerPath(), { workerData: data })
  const messages: FromWriter[] = []
  let wake = () => {}
  worker.on('message', (m: FromWriter) => {
    messages.push(m)
    wake()
  })
  const next = async (kind: FromWriter['t']): Promise<FromWriter> => {
    for (;;) {
      const i = messages.findIndex((m) => m.t === kind || m.t === 'error')
      if (i >= 0) {
        const [m] = messages.splice(i, 1)
        if (m!.t === 'error') throw new Error(`monitoring writer: ${m!.message}`)
        return m!
      }
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
  await next('ready')

  // Interned names: 0 the run, 1.. apps, then the executor, then manager ids are plain text.
  const RUN = 0
  const EXECUTOR = apps.length + 1
  let seq = 0
  let records: MonitoringRecord[] = [[Rec.name, RUN, run.runId], ...apps.map((a, i): MonitoringRecord => [Rec.name, i + 1, a]), [Rec.name, EXECUTOR, 'htex']]
  let at: number[] = records.map(() => 0)
  const BATCH = 20_000
  let states = new Float64Array(BATCH * STATE_FIELDS)
  let count = 0
  // The writer answers `written` with the last batch committed, and commits batches that queued
  // up together in one transaction (one answer for several): wait by sequence number, not by count.
  let lastWritten = -1
  const writtenUpTo = async (upTo: number) => {
    while (lastWritten < upTo) lastWritten = Math.max(lastWritten, (await next('written') as Extract<FromWriter, { t: 'written' }>).seq)
  }
  const flush = async () => {
    const message: ToWriter = { t: 'batch', seq: seq++, records, at, states, stateCount: count, sentMs: Date.now() }
    worker.postMessage(message, [states.buffer as ArrayBuffer])
    records = []
    at = []
    states = new Float64Array(BATCH * STATE_FIELDS)
    count = 0
    // at most a few batches in flight, as the recorder's batching keeps it
    await writtenUpTo(message.seq - 4)
  }
  const record = async (r: MonitoringRecord) => {
    records.push(r)
    at.push(count)
  }
  const state = async (taskId: number, tryNumber: number, to: string, app: number, executor: number, timeMs: number) => {
    const o = count++ * STATE_FIELDS
    states.set([RUN, taskId, tryNumber, stateCode(to), app, executor, timeMs], o)
    if (count === BATCH) await flush()
  }

  await record([Rec.workflowStart, RUN, `/synthetic/${run.runId}`, JSON.stringify(['htex']), start])
  for (let b = 0; b < managers; b++) {
    await record([Rec.block, RUN, EXECUTOR, String(b), `job-${b}`, 'submitted', start])
    await record([Rec.block, RUN, EXECUTOR, String(b), `job-${b}`, 'running', start + 5])
    await record([Rec.manager, RUN, EXECUTOR, `m${b}`, `node${b % 2}`, String(b), 4, 'registered', start + 6])
  }
  const counts: Record<string, number> = {}
  let last = start
  for (let i = 0; i < run.tasks; i++) {
    const app = (i % apps.length) + 1
    const submit = start + 10 + Math.floor(i * gap)
    await state(i, 0, 'unsched', app, -1, submit)
    await state(i, 0, 'pending', app, -1, submit)
    if (i >= run.tasks - live) {
      await state(i, 0, 'launched', app, EXECUTOR, submit + 1)
      await state(i, 0, 'running', app, EXECUTOR, submit + 2)
      counts.running = (counts.running ?? 0) + 1
      continue
    }
    let t = submit + 1
    let tryNumber = 0
    if (failEvery > 0 && i % failEvery === 0) {
      await state(i, 0, 'launched', app, EXECUTOR, t)
      await state(i, 0, 'running', app, EXECUTOR, t + 1)
      await record([Rec.retry, RUN, i, 0, `Error: synthetic failure of task ${i}`, 0, 1, t + 3])
      await state(i, 1, 'pending', app, EXECUTOR, t + 3)
      t += 4
      tryNumber = 1
    }
    await state(i, tryNumber, 'launched', app, EXECUTOR, t)
    await state(i, tryNumber, 'running', app, EXECUTOR, t + 1)
    const end = Math.max(t + 2, submit + durationOf(i))
    if (sampleEvery > 0 && i % sampleEvery === 0) {
      for (let s = 1; s <= 3; s++) {
        await record([Rec.resource, RUN, i, tryNumber, `m${i % managers}`, s * 0.01, s * 0.002, 1_000_000 * s, 4096 * s, 1024 * s, t + 1 + s])
      }
    }
    const final = failEvery > 0 && i % (2 * failEvery) === 0 ? 'failed' : 'exec_done'
    await state(i, tryNumber, final, app, EXECUTOR, end)
    counts[final] = (counts[final] ?? 0) + 1
    last = Math.max(last, end)
  }
  let endMs: number | undefined
  if (live === 0) {
    endMs = last + 10
    for (let b = 0; b < managers; b++) {
      await record([Rec.manager, RUN, EXECUTOR, `m${b}`, `node${b % 2}`, String(b), 4, 'stopped', endMs - 2])
      await record([Rec.block, RUN, EXECUTOR, String(b), `job-${b}`, 'finished', endMs - 1])
    }
    await record([Rec.workflowEnd, RUN, JSON.stringify(counts), endMs])
  }
  await flush()
  await writtenUpTo(seq - 1)
  worker.postMessage({ t: 'close' } satisfies ToWriter)
  const closed = await next('closed')
  await worker.terminate()
  return { counts, written: closed.t === 'closed' ? closed.written : 0, endMs }
}

export { STATE_CODES }
