// The PBS shim of the tests (test/fixtures/pbs-shim/: qsub, qstat, qdel over the real Slurm) and
// the Slurm cluster under it. Not a test file itself.
//
// TODO(integrator): once test/helpers/slurm.ts is on main, import ensureSlurm from there in
// pbspro.test.ts and pbs-shim.test.ts and delete ensureSlurm/SCRIPTS below (same contract).

import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
export const SHIM_BIN = join(here, '..', 'fixtures', 'pbs-shim', 'bin')

export interface SlurmCluster {
  partition: string
  controllerAddress: string
  nodes: { name: string; address: string }[]
}

// The project's bring-up script once the Slurm work is merged; until then the Slurm helper's copy.
const SCRIPTS = [join(here, '..', 'setup', 'slurm-up.sh'), '/work/wt/slurm/test/setup/slurm-up.sh']

let result: SlurmCluster | string | undefined

/**
 * The shared test Slurm cluster, brought up if needed (the script is idempotent and takes a
 * lock), or a sentence saying why it cannot exist here, for `{ skip: ... }`. Same contract as
 * test/helpers/slurm.ts ensureSlurm().
 */
export function ensureSlurm(): SlurmCluster | string {
  result ??= bringUp()
  return result
}

function bringUp(): SlurmCluster | string {
  if (process.getuid?.() !== 0) return 'needs root (slurm-up.sh starts the Slurm daemons in network namespaces)'
  for (const command of ['sbatch', 'squeue', 'scancel', 'slurmctld']) {
    try {
      execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    } catch {
      return `needs Slurm installed (${command} is missing)`
    }
  }
  const script = SCRIPTS.find((candidate) => existsSync(candidate))
  if (!script) return 'found no slurm-up.sh'
  let output: string
  try {
    output = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 400_000 })
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim()
    return `could not bring the Slurm test cluster up (${script}): ${stderr.split('\n').slice(-3).join(' | ') || (error as Error).message}`
  }
  const line = output.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(line) as SlurmCluster
  } catch {
    return `slurm-up.sh did not end with its JSON description (last line: ${JSON.stringify(line)})`
  }
}

/**
 * Puts the shim first on PATH for this test process (the provider runs `qsub` etc. from PATH, as
 * it would on a PBS login node) and gives it a private state directory; returns the cleanup.
 */
export function useShim(): { stateDir: string; restore: () => void } {
  const stateDir = mkdtempSync(join(tmpdir(), 'tsflow-pbs-shim-'))
  const saved = { PATH: process.env.PATH, PBS_SHIM_STATE: process.env.PBS_SHIM_STATE }
  process.env.PATH = `${SHIM_BIN}${delimiter}${process.env.PATH ?? ''}`
  process.env.PBS_SHIM_STATE = stateDir
  return {
    stateDir,
    restore() {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
      rmSync(stateDir, { recursive: true, force: true })
    },
  }
}
