// A real single-host Grid Engine for the GridEngineProvider tests, brought up by the project's
// own setup script (test/setup/sge-up.sh: Debian's gridengine packages, installed if missing).
// Tests call ensureGridEngine() and skip with the returned reason when it is a string.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export interface GridEngine {
  SGE_ROOT: string
  SGE_CELL: string
  /** the cluster queue jobs go to */
  queue: string
  /** a parallel environment with allocation_rule $pe_slots */
  pe: string
  host: string
  slots: number
}

const UP_SCRIPT = fileURLToPath(new URL('../setup/sge-up.sh', import.meta.url))

let pending: Promise<GridEngine | string> | undefined

/**
 * Brings Grid Engine up (idempotent: fast when it already runs) and resolves to its environment,
 * or to a sentence saying why the tests must skip. Sets SGE_ROOT and SGE_CELL in process.env
 * (when unset) so qsub/qstat run by the provider find the cell. Once per process.
 */
export function ensureGridEngine(): Promise<GridEngine | string> {
  pending ??= bringUp()
  return pending
}

async function bringUp(): Promise<GridEngine | string> {
  if (process.platform !== 'linux') return 'Grid Engine tests need Linux'
  if (process.getuid?.() !== 0) return 'Grid Engine tests need root (test/setup/sge-up.sh installs packages and starts sge_qmaster/sge_execd)'
  const script = UP_SCRIPT
  if (!existsSync(script)) return `the bring-up script is missing (${script})`
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('bash', [script], { timeout: 900_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
  if (result.code !== 0) {
    const tail = result.stderr.trim().split('\n').slice(-5).join('\n')
    return `Grid Engine could not be brought up (bash ${script} exited with ${result.code}):\n${tail}`
  }
  const last = result.stdout.trim().split('\n').pop() ?? ''
  let engine: GridEngine
  try {
    engine = JSON.parse(last) as GridEngine
  } catch {
    return `bash ${script} printed no environment line (last stdout line: ${JSON.stringify(last)})`
  }
  process.env.SGE_ROOT ??= engine.SGE_ROOT
  process.env.SGE_CELL ??= engine.SGE_CELL
  return engine
}
