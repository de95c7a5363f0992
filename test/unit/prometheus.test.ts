// The Prometheus text format of util/prometheus.ts, parsed back line by line against the 0.0.4
// exposition grammar, and its /metrics server over real HTTP.
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE, serveMetrics } from '../../dist/util/prometheus.js'
import { DispatchTimes, resultOk } from '../../dist/interchange/metrics.js'
import { encode } from '../../dist/serialize/codec.js'
import { checkHistograms, parseExposition } from '../helpers/prometheus-text.js'

t.test('every kind renders in the exposition grammar and parses back', async (t) => {
  const r = new MetricsRegistry()
  const c = r.counter('demo_requests_total', 'Requests.\nSecond line with a back\\slash.', ['code', 'path'])
  c.labels('200', '/a').inc()
  c.labels('200', '/a').inc(2)
  c.labels('500', 'quote " back \\ newline \n end').inc()
  r.counter('demo_plain_total', 'No labels.').inc(7)
  const g = r.gauge('demo_temperature', 'A gauge.', ['room'])
  g.labels('kitchen').set(21.5)
  g.labels('cellar').set(-3)
  g.labels('nowhere').set(NaN)
  let scrapes = 0
  const live = r.gauge('demo_scrapes', 'Set by a collector.')
  r.collect(() => live.set(++scrapes))
  const h = r.histogram('demo_duration_seconds', 'A histogram.', [0.01, 0.1, 1, 10], ['app'])
  for (const v of [0.005, 0.01, 0.05, 0.5, 0.5, 5, 50, 1000]) h.labels('x').observe(v)
  h.labels('empty')
  const text = r.render()
  const parsed = parseExposition(text)
  t.equal(parsed.types.get('demo_requests_total'), 'counter')
  t.equal(parsed.types.get('demo_duration_seconds'), 'histogram')
  t.equal(parsed.help.get('demo_requests_total'), 'Requests.\\nSecond line with a back\\\\slash.', 'HELP escapes newline and backslash')
  const find = (name: string, labels: Record<string, string>) =>
    parsed.samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value
  t.equal(find('demo_requests_total', { code: '200', path: '/a' }), 3)
  t.equal(find('demo_requests_total', { code: '500', path: 'quote " back \\ newline \n end' }), 1, 'label value escaped and read back')
  t.match(text, 'path="quote \\" back \\\\ newline \\n end"', 'the escaped form on the wire')
  t.equal(find('demo_plain_total', {}), 7)
  t.equal(find('demo_temperature', { room: 'cellar' }), -3)
  t.ok(Number.isNaN(find('demo_temperature', { room: 'nowhere' })), 'NaN spelled NaN')
  t.equal(find('demo_scrapes', {}), 1, 'collectors run at render')
  t.equal(find('demo_duration_seconds_bucket', { app: 'x', le: '0.01' }), 2, 'le is inclusive')
  t.equal(find('demo_duration_seconds_bucket', { app: 'x', le: '1' }), 5)
  t.equal(find('demo_duration_seconds_bucket', { app: 'x', le: '10' }), 6)
  t.equal(find('demo_duration_seconds_bucket', { app: 'x', le: '+Inf' }), 8)
  t.equal(find('demo_duration_seconds_count', { app: 'x' }), 8)
  t.equal(find('demo_duration_seconds_sum', { app: 'x' }), 0.005 + 0.01 + 0.05 + 0.5 + 0.5 + 5 + 50 + 1000)
  t.equal(find('demo_duration_seconds_count', { app: 'empty' }), 0)
  checkHistograms(parsed, t)
  t.equal(parseExposition(r.render()).samples.find((s) => s.name === 'demo_scrapes')!.value, 2)
  await promtool(t, text)
})

t.test('names and values are checked where they are made', async (t) => {
  const r = new MetricsRegistry()
  t.throws(() => r.counter('requests', 'no suffix'), /end in _total/)
  t.throws(() => r.gauge('9lives', 'bad name'), /invalid metric name/)
  t.throws(() => r.gauge('ok_name', 'bad label', ['__reserved']), /invalid label name/)
  t.throws(() => r.histogram('h_seconds', 'le', [1], ['le']), /'le'/)
  t.throws(() => r.histogram('h2_seconds', 'order', [1, 0.5]), /increase/)
  r.gauge('twice', 'x')
  t.throws(() => r.gauge('twice', 'x'), /twice/)
  const c = r.counter('c_total', 'x', ['a'])
  t.throws(() => c.labels(), /takes 1 label/)
  t.throws(() => c.labels('v').inc(-1), /only goes up/)
  t.equal(new MetricsRegistry().render(), '', 'an empty registry renders nothing')
})

t.test('the /metrics server: GET and HEAD at the path, 404 elsewhere, 405 for other methods', async (t) => {
  const r = new MetricsRegistry()
  r.counter('served_total', 'x').inc(4)
  const server = await serveMetrics(r, { port: 0 })
  t.teardown(() => server.close())
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
  const get = await fetch(server.url)
  t.equal(get.status, 200)
  t.equal(get.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE)
  t.match(await get.text(), /^served_total 4$/m)
  const head = await fetch(server.url, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(await head.text(), '')
  t.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404)
  t.equal((await fetch(`${server.url}?x=1`)).status, 200, 'a query string is ignored')
  t.equal((await fetch(server.url, { method: 'POST', body: 'x' })).status, 405)
})

t.test('resultOk reads the ok flag of a result payload without decoding it', async (t) => {
  for (const id of [0, 5, 200, 70_000, 2 ** 33]) {
    for (const tryNumber of [0, 3, 300]) {
      t.equal(resultOk(encode([id, tryNumber, 1, { big: 'value' }])), true, `ok, id ${id} try ${tryNumber}`)
      t.equal(resultOk(encode([id, tryNumber, 0, { message: 'boom' }])), false, `failed, id ${id} try ${tryNumber}`)
    }
  }
  t.equal(resultOk(new Uint8Array([])), false)
  t.equal(resultOk(new Uint8Array([0x94, 0xc1, 0, 1])), false, 'an unknown byte is not ok')
})

t.test('DispatchTimes keeps a time per task out, growing when ids outstanding span the table', async (t) => {
  const times = new DispatchTimes(8)
  for (let id = 1; id <= 6; id++) times.set(id, id * 10)
  t.equal(times.take(3), 30)
  t.equal(times.take(3), -1, 'taken once')
  t.equal(times.size, 8)
  times.set(9, 90) // slot of id 1, still out: the table doubles
  t.equal(times.size, 16)
  t.equal(times.take(1), 10, 'entries survive the growth')
  t.equal(times.take(9), 90)
  times.set(17, 170) // slot of id 1 again, which is gone: no growth
  t.equal(times.size, 16)
  times.set(4, 41) // a retry of a task: its new time replaces the old one
  t.equal(times.take(4), 41)
  t.equal(times.take(100), -1, 'an id never set')
  for (let id = 1000; id < 1000 + 5000; id++) times.set(id, id)
  let ok = 0
  for (let id = 1000; id < 1000 + 5000; id++) if (times.take(id) === id) ok++
  t.equal(ok, 5000, '5000 outstanding tasks kept exactly')
  t.equal(times.dropped, 0)
})

/** `promtool check metrics` on the text when promtool is installed (apt: prometheus). */
async function promtool(t: Test, text: string): Promise<void> {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' })
  if (probe.error) {
    t.pass('promtool check metrics', { skip: 'promtool is not installed (apt-get install prometheus); the grammar check above still ran' })
    return
  }
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.equal(run.status, 0, `promtool check metrics: ${run.stdout}${run.stderr}`)
}
