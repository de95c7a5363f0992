// The manager's walltime flags: what the executor passes (--walltime, --walltime-margin,
// --block-end-ms) becomes the manager's block end, read together with the block clock its
// script exports; bad values are usage errors naming the flag.
import t from 'tap'

import { managerSpec, BLOCK_START_ENV } from 'tsflow/protocol'
import { resolveManagerSpec } from '../../dist/manager/cli.js'

const facts = { cpus: 2, memoryMb: 4000 }
const base = ['--interchange', 'tcp://10.0.0.1:55001', '--block-id', '7']

function resolve(args: string[], env: Record<string, string> = {}, startMs = 1_700_000_010_000) {
  const spec = managerSpec.decode([...base, ...args])
  if (spec === 'help') throw new Error('unexpected help')
  return resolveManagerSpec(spec, facts, env, startMs)
}

t.test('the executor-built flags round-trip and give the block end', async (t) => {
  const argv = managerSpec.encode({ interchange: 'tcp://h:1', blockId: 'b', walltimeSeconds: 90, walltimeMarginMs: 2500 })
  t.match(argv.join(' '), /--walltime 90 --walltime-margin 2500/)
  const options = resolve(['--walltime', '90', '--walltime-margin', '2500'], { [BLOCK_START_ENV]: '1700000000000' })
  t.same(options.blockEnd, { endMs: 1_700_000_090_000, source: `${BLOCK_START_ENV} + --walltime 90` })
  t.equal(options.walltimeMarginMs, 2500)
  t.same(resolve(['--block-end-ms', '1700000050000']).blockEnd, { endMs: 1_700_000_050_000, source: '--block-end-ms' })
  t.equal(resolve([]).blockEnd, undefined, 'no walltime: no block end, nothing changes')
})

t.test('bad values are refused naming the flag', async (t) => {
  t.throws(() => resolve(['--walltime', '0']), { code: 'E_USAGE', message: /--walltime/ })
  t.throws(() => resolve(['--walltime-margin', '-1']), { code: 'E_USAGE', message: /--walltime-margin/ })
  t.throws(() => resolve(['--block-end-ms', 'soon']), { code: 'E_USAGE', message: /--block-end-ms/ })
})
