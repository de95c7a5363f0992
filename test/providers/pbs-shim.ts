// The PBS shim of the tests (test/fixtures/pbs-shim/: qsub, qstat, qdel over the real Slurm that
// test/helpers/slurm.ts ensureSlurm() brings up). Not a test file itself.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
export const SHIM_BIN = join(here, '..', 'fixtures', 'pbs-shim', 'bin')

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
