import { spawn } from 'node:child_process'
import { ProviderError } from '../../errors.js'
import { shellQuote } from '../../launchers/shell.js'

export interface CommandResult {
  stdout: string
  stderr: string
  /** exit code; null when a signal ended the command */
  code: number | null
}

export interface RunOptions {
  /** the provider's cmdTimeoutMs: the command is killed (its whole process group) after this */
  timeoutMs: number
  /** written to the command's stdin, which is then closed */
  input?: string
  env?: NodeJS.ProcessEnv
  /** names the provider in errors */
  provider: string
}

/** Output kept per stream: scheduler listings are small; a runaway command must not fill memory. */
const MAX_OUTPUT_BYTES = 32 * 1024 * 1024

/** `cmd arg...` as a user could paste it into a shell, for error messages. */
export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(shellQuote).join(' ')
}

/**
 * Runs one scheduler command (sbatch, squeue, qstat, ...) and collects its output. It never
 * hangs the caller: a command still running after `timeoutMs` is killed with its process group
 * (a wrapper script's children too) and the promise rejects with a ProviderError naming the
 * command line and the option to raise. A command that cannot be started (not on PATH) rejects
 * the same way. A non-zero exit is NOT an error here: schedulers use exit codes for answers
 * ("no such job"), so the caller reads `code` and `stderr`.
 */
export function runCommand(command: string, args: readonly string[], options: RunOptions): Promise<CommandResult> {
  const line = commandLine(command, args)
  return new Promise<CommandResult>((resolve, reject) => {
    let child
    try {
      child = spawn(command, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env })
    } catch (error) {
      reject(new ProviderError(options.provider, `cannot run \`${line}\`: ${(error as Error).message}`, { cause: error }))
      return
    }
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    let settled = false
    const finish = (outcome: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      outcome()
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
      const partial = Buffer.concat(stderr).toString('utf8').trim()
      finish(() =>
        reject(
          new ProviderError(
            options.provider,
            `\`${line}\` did not finish within cmdTimeoutMs (${options.timeoutMs} ms) and was killed` +
              `${partial ? `; its stderr so far: ${partial}` : ''}; check that the scheduler answers, or raise cmdTimeoutMs`,
          ),
        ),
      )
    }, options.timeoutMs)
    child.stdout!.on('data', (chunk: Buffer) => {
      if ((outBytes += chunk.length) <= MAX_OUTPUT_BYTES) stdout.push(chunk)
    })
    child.stderr!.on('data', (chunk: Buffer) => {
      if ((errBytes += chunk.length) <= MAX_OUTPUT_BYTES) stderr.push(chunk)
    })
    child.once('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ENOENT' ? ` (${command} is not on PATH: is the scheduler's client installed on this host?)` : ''
      finish(() => reject(new ProviderError(options.provider, `cannot run \`${line}\`: ${error.message}${hint}`, { cause: error })))
    })
    child.once('close', (code) => {
      finish(() => resolve({ stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), code }))
    })
    // EPIPE when the command does not read its stdin is not a failure of the command.
    child.stdin!.on('error', () => {})
    child.stdin!.end(options.input ?? '')
  })
}

/** A command's failure as one message: its line, how it ended and its stderr (or stdout). */
export function describeFailure(command: string, args: readonly string[], result: CommandResult): string {
  const how = result.code === null ? 'was killed by a signal' : `exited with code ${result.code}`
  const output = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-20).join('\n')
  return `\`${commandLine(command, args)}\` ${how}${output ? `: ${output}` : ' and printed nothing'}`
}
