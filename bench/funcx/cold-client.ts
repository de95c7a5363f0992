/**
 * The fresh client of cold-start's endpoint runs, a process of its own (as a user's script is):
 * started before the endpoint, it loads node, tsflow and the apps, says `ready`, and on `go`
 * (sent when `tsflow endpoint start` returns) loads a kernel with an EndpointExecutor and makes
 * the first call. Prints one JSON line: the parts and the absolute time of the result.
 *
 *   node out/bench/funcx/cold-client.js <endpoint name> <TSFLOW_HOME> <run dir>
 */
import { createInterface } from 'node:readline'
import { load, type Config } from 'tsflow'
import { hello } from './apps.js'

const [name, home, runDir] = process.argv.slice(2)
if (!name || !home || !runDir) {
  process.stderr.write('usage: cold-client.js <endpoint name> <TSFLOW_HOME> <run dir>\n')
  process.exit(2)
}
const { EndpointExecutor } = (await import('tsflow')) as unknown as { EndpointExecutor: new (options: Record<string, unknown>) => NonNullable<Config['executors']>[number] }
const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
for await (const line of lines) {
  if (line.trim() !== 'go') continue
  const started = performance.now()
  const kernel = await load({ runDir, executors: [new EndpointExecutor({ endpoint: name, home, label: 'endpoint' })] })
  const loaded = performance.now()
  const result = await hello('cold')
  const done = performance.now()
  if (result !== 'Hello cold!') throw new Error(`cold-client: the first call returned ${JSON.stringify(result)}`)
  process.stdout.write(`${JSON.stringify({ load_ms: loaded - started, first_call_ms: done - loaded, done_at: performance.timeOrigin + done })}\n`)
  await kernel.cleanup()
  break
}
lines.close()
