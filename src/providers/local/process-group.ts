import { readdirSync, readFileSync } from 'node:fs'

/** Process-group helpers for the local provider: a block is the group its script's bash leads. */

/** Sends `signal` to every process of the group `pid` leads; an empty group is fine. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // The group is already empty.
  }
}

/**
 * True while any live process of the group `pid` leads exists. Zombies do not count: a block's
 * process that died after its parent is reaped by init, which some container inits do only every
 * second or so, and waiting for that would delay every cancel and trigger needless SIGKILLs.
 */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0)
  } catch {
    // ESRCH: no process in the group. EPERM: the id now belongs to another user's processes.
    return false
  }
  const states = groupStates(pid)
  return states === undefined || states.some((state) => state !== 'Z')
}

/** States of the processes in group `pgid`, from /proc; undefined where there is no /proc (macOS). */
function groupStates(pgid: number): string[] | undefined {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return undefined
  }
  const states: string[] = []
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // exited while we looked
    }
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses, so cut at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== undefined) states.push(fields[0])
  }
  return states
}
