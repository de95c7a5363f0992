// A block that outlives its walltime on the real Slurm (test/setup/slurm-up.sh): Slurm ends it
// with TIMEOUT, and the provider says the block reached its walltime. Slurm's smallest walltime
// is one minute and it checks limits about every 30 s, so this file takes 1-2 minutes (its own
// file so that it runs beside the other Slurm tests).
import { join } from 'node:path'
import t from 'tap'

import { SlurmProvider } from 'tsflow'
import type { BlockStatus } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { tempDir, waitFor } from './helpers.js'

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('a Slurm block past its walltime', { skip: cluster }, () => {})
} else {
  t.test('a block past its walltime is failed with TIMEOUT and a message that says so', async (t) => {
    const { dir, remove } = tempDir('slurm-walltime')
    const provider = new SlurmProvider({ partition: cluster.partition, walltime: '00:01:00' })
    t.teardown(async () => {
      await provider.shutdown()
      remove()
    })
    provider.validate('p')
    await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
    const jobId = await provider.submit('echo "block clock: $TSFLOW_BLOCK_WALLTIME_S s"; sleep 600', 'late')
    let last: BlockStatus | undefined
    await waitFor(
      async () => ['completed', 'failed', 'cancelled'].includes((last = (await provider.status([jobId]))[0]!).state),
      `job ${jobId} to end (last ${JSON.stringify(last)})`,
      170_000,
      1000,
    )
    t.equal(last!.state, 'failed')
    t.match(last!.message, /slurm says TIMEOUT/)
    t.match(last!.message, /reached its walltime \(00:01:00\) and Slurm stopped it/)
    t.match(last!.message, /DUE TO TIME LIMIT/, "Slurm's own line from the block's stderr")
  })
}
