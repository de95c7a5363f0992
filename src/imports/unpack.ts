/**
 * STAND-IN for helper "unpack"'s node cache (issue 9), written only so the loader can be built and
 * tested before the real module lands on main: same API, none of its guarantees (no node-level
 * lock, no crash take-over, no cleanup). Replace this file with main's when merging.
 *
 * Layout: `<cacheDir>/<hash>/` is the unpacked package root (the tar's `package/` prefix
 * stripped), `<cacheDir>/<hash>.done` its done marker.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ShippedPackageWire } from '../protocol/imports.js'
import type { ObjectKey } from '../proxy/connector.js'
import type { Store } from '../proxy/store.js'

export function defaultCacheDir(): string {
  return join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tsflow-imports')
}

export function expandCacheDir(dir: string, places: { block: string; host: string }): string {
  return dir.replaceAll('{block}', places.block).replaceAll('{host}', places.host || hostname())
}

export function packageDir(cacheDir: string, pkg: ShippedPackageWire): string {
  return join(cacheDir, pkg.hash)
}

export function isUnpacked(dir: string): boolean {
  return existsSync(`${dir}.done`)
}

export async function ensureUnpacked(pkg: ShippedPackageWire, store: Store, cacheDir: string): Promise<string> {
  const dir = packageDir(cacheDir, pkg)
  if (isUnpacked(dir)) return dir
  const bytes = await store.get<Uint8Array>(pkg.key as unknown as ObjectKey, { serializer: 'bytes', cache: false })
  const { x } = await import('tar')
  const temp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
  mkdirSync(temp, { recursive: true })
  const tarball = `${temp}.tar`
  writeFileSync(tarball, bytes)
  try {
    await x({ file: tarball, cwd: temp, strip: 1 })
    try {
      renameSync(temp, dir)
    } catch {
      rmSync(temp, { recursive: true, force: true })
    }
    writeFileSync(`${dir}.done`, '')
  } finally {
    rmSync(tarball, { force: true })
  }
  return dir
}

export function waitUnpackedSync(pkg: ShippedPackageWire, cacheDir: string, timeoutMs: number): string {
  const dir = packageDir(cacheDir, pkg)
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const end = Date.now() + timeoutMs
  while (!isUnpacked(dir)) {
    if (Date.now() > end) throw new Error(`package ${pkg.name} was not unpacked into ${dir} within ${timeoutMs} ms`)
    Atomics.wait(cell, 0, 0, 10)
  }
  return dir
}
