// The socket-free session bookkeeping of an endpoint (src/endpoint/sessions.ts).
import t from 'tap'

import { Sessions, type Session } from '../../dist/endpoint/sessions.js'
import { Logger } from '../../dist/util/logger.js'
import type { EndpointToClient, TaskEnvelope } from 'tsflow/protocol'

class Lines extends Logger {
  readonly lines: string[] = []
  constructor() {
    super('test', 'debug')
  }
  override info(message: string): void {
    this.lines.push(message)
  }
  override warn(message: string): void {
    this.lines.push(message)
  }
}

function setup(options: Partial<ConstructorParameters<typeof Sessions>[0]> = {}) {
  let now = 1000
  const sent: { session: string; message: EndpointToClient }[] = []
  const log = new Lines()
  const sessions = new Sessions(
    { endpoint: 'ep', resultTtlMs: 10_000, maxRetainedBytesPerSession: 1000, sessionIdleMs: 60_000, clientThresholdMs: 3000, logger: log, clock: () => now, ...options },
    (session, message) => sent.push({ session: session.name, message }),
  )
  const open = (key: string, name: string, resume = false) => {
    const s = sessions.hello(key, name, `client-${key}`, resume)
    if ('refused' in s) throw new Error(s.refused)
    return s
  }
  return { sessions, sent, log, open, advance: (ms: number) => (now += ms), kinds: (name: string) => sent.filter((s) => s.session === name).map((s) => s.message.t) }
}

const task = (id: number, f = 1, bytes = 10): TaskEnvelope => ({ id, try: 0, f, k: 0, payload: new Uint8Array(bytes) })
const fn = (text: string) => new TextEncoder().encode(text)
const result = (id: number, bytes = 100) => ({ id, try: 0, payload: new Uint8Array(bytes) })

t.test('ids are mapped both ways; sessions share a function sent by both; unknown functions fail', async (t) => {
  const { sessions, sent, open } = setup()
  const a = open('A', 'a')
  const b = open('B', 'b')
  const fa = sessions.submit(a, [task(1), task(2)], [[1, fn('add')]])!
  const fb = sessions.submit(b, [task(1, 7)], [[7, fn('add')]])!
  t.same(fa.tasks.map((x) => x.id), [1, 2], 'interchange ids')
  t.same(fb.tasks.map((x) => x.id), [3])
  t.equal(fa.fns!.length, 1)
  t.equal(fb.fns, undefined, 'the same descriptor from another session is not sent again')
  t.equal(fb.tasks[0]!.f, fa.tasks[0]!.f, 'both sessions name one interchange function')
  t.equal(sessions.outstandingTasks, 3)

  const none = sessions.submit(a, [task(9, 42)], undefined)
  t.equal(none, undefined, 'nothing to forward')
  const failed = sent.find((s) => s.session === 'a' && s.message.t === 'failed')!.message as Extract<EndpointToClient, { t: 'failed' }>
  t.equal(failed.failures[0]!.id, 9)
  t.match(failed.failures[0]!.error.message, 'task #9 of session a names function 42, which the session never sent')

  sessions.results([result(3), result(1)], { ids: [2], tries: [0] })
  const toA = sent.filter((s) => s.session === 'a' && s.message.t === 'results').map((s) => s.message as Extract<EndpointToClient, { t: 'results' }>)
  t.same(toA[0]!.results.map((r) => r.id), [1], "session a gets its task 1 under its own id")
  t.same(toA[0]!.dispatched, { ids: [2], tries: [0] }, 'the dispatch notice rides along, in session ids')
  const toB = sent.filter((s) => s.session === 'b' && s.message.t === 'results').map((s) => s.message as Extract<EndpointToClient, { t: 'results' }>)
  t.same(toB[0]!.results.map((r) => r.id), [1], "session b's task 1 (interchange 3)")
  t.same([...a.outstanding.keys()], [2])
  t.equal(sessions.totals.resultsSent, 2)
  // An unknown interchange id (forgotten session) is dropped.
  sessions.results([result(77)])
  t.equal(sessions.totals.resultsSent, 2)
})

t.test('retained until ack (try-aware), trimmed oldest-first past the byte cap, expired after the TTL', async (t) => {
  const { sessions, open, advance, log } = setup()
  const a = open('A', 'a')
  sessions.submit(a, [1, 2, 3, 4, 5].map((id) => task(id)), [[1, fn('f')]])
  sessions.results([result(1, 300), result(2, 300), result(3, 300)])
  t.equal(a.retained.size, 3)
  t.equal(a.retainedBytes, 900)
  sessions.results([result(4, 300)])
  t.same([...a.retained.keys()], [2, 3, 4], 'over 1000 bytes: the oldest went')
  t.match(log.lines.join('\n'), /session a: 1 unacknowledged results dropped \(oldest first, tasks #1\.\.#1\)/)
  sessions.ack(a, [2], [0])
  t.same([...a.retained.keys()], [3, 4])
  sessions.ack(a, [3], [-1])
  t.same([...a.retained.keys()], [3, 4], 'an ack of an older try keeps a newer outcome')
  advance(5000)
  sessions.results([result(5, 10)])
  advance(5001)
  sessions.sweep()
  t.same([...a.retained.keys()], [5], 'the two older ones expired')
  t.match(log.lines.join('\n'), /session a: 2 results unacknowledged for 10 s \(resultTtlMs\) dropped/)
  t.equal(a.retainedBytes, 10)
})

t.test('resume resends what is unacknowledged; a foreign hello without resume is refused; bye', async (t) => {
  const { sessions, sent, open } = setup()
  const a = open('A1', 'r')
  sessions.submit(a, [task(1), task(2), task(3)], [[1, fn('f')]])
  sessions.results([result(1)])
  sessions.failed([{ id: 2, try: 0, error: { name: 'ManagerLost', message: 'gone' } }])
  // The first connection dies; results keep being retained.
  const refused = sessions.hello('A2', 'r', 'other', false)
  t.match(refused, { refused: /session r exists \(1 tasks outstanding, 2 results retained, connected from client-A1\)/ })
  const resumed = open('A2', 'r', true)
  t.equal(resumed, a, 'the same session')
  t.equal(sessions.byRoutingKey.has('A1'), false, 'the old connection is unbound')
  sent.length = 0
  sessions.welcome(a, { t: 'ep_welcome', endpoint: 'ep', proto: 1, version: 'x', heartbeatPeriodMs: 1, heartbeatThresholdMs: 2, resultTtlMs: 3 })
  t.same(sent.map((s) => s.message.t), ['ep_welcome', 'results', 'failed'])
  t.match(sent[0]!.message, { outstanding: [3], retained: 2 })
  t.same((sent[1]!.message as Extract<EndpointToClient, { t: 'results' }>).results.map((r) => r.id), [1])
  t.same((sent[2]!.message as Extract<EndpointToClient, { t: 'failed' }>).failures.map((f) => f.id), [2])

  t.same(sessions.bye(a, false), [], 'a plain bye keeps the session')
  t.equal(sessions.byName.has('r'), true)
  t.equal(a.connected, false)
  sessions.results([result(3)])
  t.equal(a.retained.size, 3, 'results of a departed client are retained')
  const b = open('B', 'f')
  sessions.submit(b, [task(1), task(2)], [[1, fn('f')]])
  t.same(sessions.bye(b, true).sort(), [4, 5], 'bye forget returns the interchange ids to cancel')
  t.equal(sessions.byName.has('f'), false)
  sessions.results([result(4)])
  t.equal(sessions.totals.resultsSent, 2, "a forgotten session's result goes nowhere")
})

t.test('cancel: queued tasks fail here under session ids, running ones are forwarded', async (t) => {
  const { sessions, sent, open } = setup()
  const a = open('A', 'c')
  sessions.submit(a, [task(10), task(11)], [[1, fn('f')]])
  const forward = sessions.cancel(a, [10, 11, 99], (id) => id === 1)
  t.same(forward, [2])
  const failed = sent.find((s) => s.message.t === 'failed')!.message as Extract<EndpointToClient, { t: 'failed' }>
  t.equal(failed.failures[0]!.id, 10)
  t.match(failed.failures[0]!.error, { name: 'TaskCancelled', message: /task #10 .*cancelled while queued in endpoint ep/ })
  t.same([...a.outstanding.keys()], [11])
})

t.test('silence, idle sessions, and stop', async (t) => {
  const { sessions, sent, open, advance, log } = setup({ sessionIdleMs: 10_000, maxRetainedBytesPerSession: 1 << 20 })
  const a = open('A', 's')
  const b = open('B', 'quiet')
  sessions.submit(a, [task(1), task(2)], [[1, fn('f')]])
  advance(3001)
  sessions.seen(a)
  sessions.sweep()
  t.equal(a.connected, true)
  t.equal(b.connected, false, 'silent past the threshold')
  t.match(log.lines.join('\n'), /session quiet: client client-B silent for 3001 ms/)
  sessions.seen(b)
  t.equal(b.connected, true, 'heard from again')
  sessions.bye(b, false)
  advance(10_001)
  sessions.sweep()
  t.equal(sessions.byName.has('quiet'), false, 'an empty idle session is forgotten')
  t.equal(sessions.byName.has('s'), true, 'one with work is kept')

  sent.length = 0
  const ids = sessions.stopAll('shutting down', (id) => (id === 1 ? 'running' : 'queued'))
  t.same(ids.sort(), [1, 2])
  t.equal(sessions.outstandingTasks, 0)
  const failed = sent.find((s) => s.message.t === 'failed')!.message as Extract<EndpointToClient, { t: 'failed' }>
  t.same(failed.failures.map((f) => f.id).sort(), [1, 2])
  t.match(failed.failures.find((f) => f.id === 1)!.error, { code: 'E_ENDPOINT_STOPPED', message: 'endpoint ep: task #1 of session s was running when the endpoint stopped (shutting down)' })
  t.match(failed.failures.find((f) => f.id === 2)!.error.message, 'was queued')
  t.equal(a.retained.size, 2, 'retained until acknowledged, like any outcome')
})
