// The PBS shim of the tests (test/fixtures/pbs-shim/: qsub, qstat, qdel over the real Slurm) and
// the Slurm cluster under it. Not a test file itself.
//
// TODO(integrator): ensureSlurmCluster() runs the Slurm helper's bring-up script; once
// test/helpers/slurm.ts (ensureSlurm) is on main, call that instead and drop the search below.

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

const SCRIPTS = [join(here, '..', 'setup', 'slurm-up.sh'), '/work/wt/slurm/test/setup/slurm-up.sh']

/** Why the shim's Slurm cannot be used here, or undefined when it can. */
export function slurmUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (slurm-up.sh starts the Slurm daemons)'
  for (const command of ['sbatch', 'squeue', 'scancel', 'slurmctld']) {
    try {
      execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    } catch {
      return `needs Slurm installed (${command} is missing)`
    }
  }
  if (!SCRIPTS.some((script) => existsSync(script))) return 'found no slurm-up.sh'
  return undefined
}

let cluster: SlurmCluster | undefined

/** Brings the shared test Slurm cluster up (idempotent, the script takes a lock) and describes it. */
export function ensureSlurmCluster(): SlurmCluster {
  if (cluster) return cluster
  const script = SCRIPTS.find((candidate) => existsSync(candidate))
  if (!script) throw new Error('found no slurm-up.sh')
  const stdout = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 })
  const last = stdout.trim().split('\n').at(-1) ?? ''
  cluster = JSON.parse(last) as SlurmCluster
  return cluster
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
