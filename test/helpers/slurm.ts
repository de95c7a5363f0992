// The real two-node Slurm cluster the tests run against: test/setup/slurm-up.sh brings it up
// (or finds it up) and describes it. Root only; a test file that cannot have it skips with the
// reason ensureSlurm() returns.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export interface SlurmCluster {
  partition: string
  /** a partition that is State=DOWN: jobs sent there stay pending (Reason=PartitionDown) */
  downPartition: string
  /** where slurmctld listens, in the root namespace: the address the hosts reach it (and tests) at */
  controllerAddress: string
  /** each host is a network namespace of that name running its own slurmd */
  nodes: { name: string; address: string }[]
}

const UP_SCRIPT = fileURLToPath(new URL('../setup/slurm-up.sh', import.meta.url))
const NEEDED = ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'munged', 'ip', 'unshare', 'flock']

let result: SlurmCluster | string | undefined

function has(command: string): boolean {
  try {
    execFileSync('bash', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Brings the cluster up (idempotent, safe from several test files at once) and returns it, or
 * a sentence saying why it cannot exist here, for `{ skip: ... }`.
 */
export function ensureSlurm(): SlurmCluster | string {
  result ??= bringUp()
  return result
}

function bringUp(): SlurmCluster | string {
  if (process.getuid?.() !== 0) return 'the Slurm tests need root (network namespaces and the Slurm daemons; CI runs them as root)'
  const missing = NEEDED.filter((command) => !has(command))
  if (missing.length > 0) {
    return `the Slurm tests need ${missing.join(', ')} (apt-get install slurmctld slurmd slurm-client munge iproute2; .ci/run does this)`
  }
  let output: string
  try {
    output = execFileSync('bash', [UP_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 400_000 })
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim()
    return `the Slurm test cluster could not be brought up (${UP_SCRIPT}): ${stderr.split('\n').slice(-3).join(' | ') || (error as Error).message}`
  }
  const line = output.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(line) as SlurmCluster
  } catch {
    return `slurm-up.sh did not end with its JSON description (last line: ${JSON.stringify(line)})`
  }
}
