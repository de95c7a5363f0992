import { ConfigError } from '../errors.js'
import type { Check } from './schema.js'

/**
 * Human sizes, as people write them in options and on command lines: `1MB`, `1.5 GB`, `64KiB`,
 * `512` (bytes). Decimal units are powers of 1000 (kB/KB, MB, GB, TB), binary ones powers of
 * 1024 (KiB, MiB, GiB, TiB); the unit's case does not matter, `B` may be left out.
 */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
}
const SIZE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i

/** Bytes in a human size (`'10MB'` is 10 000 000), rounded down; undefined when `text` is not one. */
export function parseSize(text: string): number | undefined {
  const match = SIZE.exec(text)
  if (!match) return undefined
  const unit = UNITS[match[2]!.toLowerCase()]
  if (unit === undefined) return undefined
  const bytes = Math.floor(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** The shortest decimal form of a byte count: 1000000 -> '1MB', 1536 -> '1.54kB', 12 -> '12B'. */
export function formatSize(bytes: number): string {
  for (const [unit, scale] of [
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ] as const) {
    if (bytes >= scale) return `${Number((bytes / scale).toFixed(2))}${unit}`
  }
  return `${bytes}B`
}

/** An option holding a byte count: a non-negative integer, or a human size string ('1MB', '64KiB'). */
export const sizeBytes: Check<number> = (value, path) => {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  if (typeof value === 'string') {
    const bytes = parseSize(value)
    if (bytes !== undefined) return bytes
  }
  throw new ConfigError(
    path,
    `must be a size in bytes: a non-negative integer or a string like '1MB', '512kB' or '64KiB' (got ${typeof value === 'string' ? JSON.stringify(value) : String(value)})`,
  )
}
