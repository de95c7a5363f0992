// An endpoint serves its interchange's Prometheus metrics when config.json sets metricsPort.
import t from 'tap'

import { resolveEndpointConfig } from 'tsflow/endpoint'
import { RawClient, fixtureTask, startEndpoint, waitFor } from './harness.js'
import { parseExposition } from '../helpers/prometheus-text.js'

const scrape = async (url: string) => parseExposition(await (await fetch(url)).text())
const value = (parsed: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string> = {}) =>
  parsed.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

t.test('metricsPort in config.json: endpoint.json names the URL, the log says it, a scrape counts the tasks', async (t) => {
  const ep = await startEndpoint(t, { metricsPort: 0 })
  t.match(ep.state.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'the state names the metrics URL')
  t.match(ep.log(), /Prometheus metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/, 'the log says where')
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.hello('metrics')
  await waitFor(async () => value(await scrape(ep.state.metricsUrl!), 'tsflow_managers') === 1, 'the manager to be counted')
  const n = 12
  await client.submit(Array.from({ length: n }, (_, i) => fixtureTask(client.fns, i + 1, 'add', [i, 1])))
  await waitFor(() => client.outcomes.size === n, 'every result')
  const parsed = await scrape(ep.state.metricsUrl!)
  t.equal(value(parsed, 'tsflow_tasks_submitted_total'), n, 'submitted tasks counted')
  t.equal(value(parsed, 'tsflow_tasks_completed_total', { outcome: 'ok' }), n, 'completed tasks counted')
  t.equal(value(parsed, 'tsflow_workers'), 2, 'the workers of the one manager')
})

t.test('without metricsPort there is no metrics URL', async (t) => {
  const ep = await startEndpoint(t)
  t.equal(ep.state.metricsUrl, undefined)
})

t.test('a bad metricsPort in config.json is a ConfigError naming the file and field', async (t) => {
  t.throws(() => resolveEndpointConfig({ metricsPort: 70000 }, '/home/x/.tsflow/endpoints/ep/config.json'), {
    name: 'ConfigError',
    message: /config\.json: metricsPort/,
  })
})
