// Shared helpers for provider and scaling tests (not a test file itself; see conformance.ts).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { waitFor } from '../helpers/wait.js'

export { waitFor }

/**
 * True while a process (pid > 0) or a process group (pid < 0) exists and is not just a zombie
 * (an exited process its parent, or a slow container init, has not reaped yet).
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  const states = procStates((stat) => (pid > 0 ? stat.pid === pid : stat.pgrp === -pid))
  return states === undefined || states.some((state) => state !== 'Z')
}

function procStates(match: (stat: { pid: number; pgrp: number }) => boolean): string[] | undefined {
  let entries: string[]
  try {
    entries = readdirSync('/proc').filter((entry) => /^[0-9]+$/.test(entry))
  } catch {
    return undefined // no /proc: trust kill(pid, 0)
  }
  const states: string[] = []
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const [state = '', , pgrp = ''] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (match({ pid: Number(entry), pgrp: Number(pgrp) })) states.push(state)
    } catch {
      // exited while we looked
    }
  }
  return states
}

/** Best-effort SIGKILL for teardown: a test that failed half way must still leave nothing behind. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `tsflow-${label}-`))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The integers in a file (one per line), or [] while it does not exist yet. */
export function readPids(path: string): number[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((line) => Number.parseInt(line, 10))
      .filter((pid) => Number.isInteger(pid) && pid > 0)
  } catch {
    return []
  }
}
