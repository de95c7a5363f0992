/**
 * The node-level lock of proxy imports' node cache (unpack.ts; docs/proxy-imports.md "The node
 * cache and its lock protocol"): taken with open(path, 'wx'), holding pid, host and start time,
 * refreshed by its holder, and taken over atomically when its holder is gone.
 */
import { closeSync, fstatSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { link, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
export interface LockHolder {
  pid: number
  host: string
  started: string
}

export interface LockState {
  holder: LockHolder | undefined
  ino: number
  mtimeMs: number
}

export function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as LockHolder
    return typeof value.pid === 'number' && typeof value.host === 'string' ? value : undefined
  } catch {
    // created but not written yet, or not ours
    return undefined
  }
}

export function lockStateSync(lock: string): LockState | undefined {
  try {
    const info = statSync(lock)
    return { holder: parseHolder(readFileSync(lock, 'utf8')), ino: info.ino, mtimeMs: info.mtimeMs }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: alive, someone else's
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

// A holder on this host whose process is gone crashed; anywhere, a lock nobody refreshed for
// staleLockMs did (the mtime test also covers a reused pid and a holder on another host).
export function isStale(state: LockState, staleLockMs: number): boolean {
  if (state.holder && state.holder.host === hostname() && !pidAlive(state.holder.pid)) return true
  return Date.now() - state.mtimeMs > staleLockMs
}

export function describeLock(lock: string, state: LockState | undefined): string {
  if (!state) return `no process holds its lock ${lock} and no done marker appeared (is anything unpacking it?)`
  const refreshed = `${((Date.now() - state.mtimeMs) / 1000).toFixed(1)} s ago`
  if (!state.holder) return `its lock ${lock} is held by an unknown process (no holder recorded; refreshed ${refreshed})`
  const { pid, host, started } = state.holder
  return `its lock ${lock} is held by pid ${pid} on host ${host} (since ${started}, refreshed ${refreshed})`
}

export function holderText(): string {
  return JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() } satisfies LockHolder)
}

/**
 * Removes a stale lock so that callers compete for it again with open('wx'). The rename makes
 * the removal atomic (one taker wins; the others meet ENOENT). If a fresh lock replaced the stale
 * one between the look and the rename, the inode (or mtime) differs and it is put back.
 */
export async function takeOver(lock: string, seen: LockState): Promise<void> {
  const aside = `${lock}.stale-${process.pid}-${randomUUID().slice(0, 8)}`
  try {
    await rename(lock, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const moved = await stat(aside)
  if (moved.ino !== seen.ino || moved.mtimeMs !== seen.mtimeMs) await link(aside, lock).catch(() => {})
  await unlink(aside).catch(() => {})
}

export function takeOverSync(lock: string, seen: LockState): void {
  const aside = `${lock}.stale-${process.pid}-${randomUUID().slice(0, 8)}`
  try {
    renameSync(lock, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const moved = statSync(aside)
  if (moved.ino !== seen.ino || moved.mtimeMs !== seen.mtimeMs) {
    try {
      linkSync(aside, lock)
    } catch {
      // another lock is there already: it stays
    }
  }
  rmSync(aside, { force: true })
}

export async function tryLock(lock: string): Promise<FileHandle | undefined> {
  try {
    const handle = await open(lock, 'wx')
    try {
      await handle.writeFile(holderText())
    } catch (error) {
      // (disk full) a lock without a holder would look live until stale: none at all instead
      await handle.close().catch(() => {})
      await unlink(lock).catch(() => {})
      throw error
    }
    return handle
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw error
  }
}

export function tryLockSync(lock: string): number | undefined {
  try {
    const fd = openSync(lock, 'wx')
    try {
      writeSync(fd, holderText())
    } catch (error) {
      closeSync(fd)
      rmSync(lock, { force: true })
      throw error
    }
    return fd
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw error
  }
}

// Removes the lock only if it is still ours (same inode): after a (mistaken) takeover the path
// may name someone else's lock.
export async function release(lock: string, handle: FileHandle): Promise<void> {
  try {
    const [mine, there] = await Promise.all([handle.stat(), stat(lock).catch(() => undefined)])
    if (there && there.ino === mine.ino) await unlink(lock).catch(() => {})
  } finally {
    await handle.close().catch(() => {})
  }
}

export function releaseSync(lock: string, fd: number): void {
  try {
    const mine = fstatSync(fd)
    let there
    try {
      there = statSync(lock)
    } catch {
      there = undefined
    }
    if (there && there.ino === mine.ino) rmSync(lock, { force: true })
  } finally {
    closeSync(fd)
  }
}
