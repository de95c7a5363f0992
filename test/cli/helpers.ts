// Shared by the `tsflow` command tests: run the built CLI (dist/bin/tsflow.js) as a real process
// with a scratch TSFLOW_HOME, and look at processes through /proc.
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const TSFLOW_BIN = join(PROJECT_ROOT, 'dist', 'bin', 'tsflow.js')

export interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/** A fresh TSFLOW_HOME, removed at the end of `t` (after the teardowns registered later, which run first). */
export function scratchHome(t: Test): string {
  const home = mkdtempSync(join(tmpdir(), 'tsflow-cli-'))
  t.teardown(() => rmSync(home, { recursive: true, force: true }))
  return home
}

/** The environment the CLI runs in: the scratch home, no loaders from the test runner. */
export function cliEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NODE_OPTIONS: '', TSFLOW_HOME: home, ...extra }
}

/** Runs `node dist/bin/tsflow.js ...args` to its end (bounded). */
export function tsflow(home: string, args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [TSFLOW_BIN, ...args],
      { env: options.env ?? cliEnv(home), timeout: options.timeoutMs ?? 60_000, killSignal: 'SIGKILL', ...(options.cwd ? { cwd: options.cwd } : {}) },
      (error, stdout, stderr) => {
        if (error && typeof (error as { code?: unknown }).code !== 'number') return reject(Object.assign(error, { stdout, stderr }))
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr })
      },
    )
  })
}

/** Live (not zombie) processes of process group `pgid`, from /proc. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry))
  }
  return members
}

/** The pid is a live process (not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Process ids whose command line mentions `text` (to find what a test started, by its unique home). */
export function processesMentioning(text: string): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry))
    } catch {
      // gone
    }
  }
  return found
}
