#!/usr/bin/env node
/**
 * `tsflow-ddict-shards`: a dictionary's shard host, one per node. Started by the creating process
 * (on this machine) or by a provider's block (on each node); decodes `ddictShardsSpec`, takes the
 * password from TSFLOW_DDICT_PASSWORD and runs src/ddict/servers/shard-host.ts. See docs/ddict.md.
 */
import { UsageError } from '../errors.js'
import { DDICT_PASSWORD_ENV, ddictShardsSpec } from '../protocol/ddict.js'
import { runShardHost } from '../ddict/servers/shard-host.js'

const USAGE = `usage: tsflow-ddict-shards --id ID --report HOST:PORT [options]
(the password of the servers comes in the environment variable ${DDICT_PASSWORD_ENV})

${ddictShardsSpec.usage()}
  --help
`

let args: ReturnType<typeof ddictShardsSpec.decode>
try {
  args = ddictShardsSpec.decode(process.argv.slice(2))
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  process.stderr.write(`tsflow-ddict-shards: ${error.message}\n`)
  process.exit(2)
}
if (args === 'help') {
  process.stdout.write(USAGE)
  process.exit(0)
}

const password = process.env[DDICT_PASSWORD_ENV] ?? ''
// Not inherited by anything this process starts (redis-server gets it through its stdin).
delete process.env[DDICT_PASSWORD_ENV]

let code: number
try {
  code = await runShardHost(args, password)
} catch (error) {
  process.stderr.write(`tsflow-ddict-shards: ${(error as Error)?.stack ?? String(error)}\n`)
  code = 1
}
process.exit(code)
