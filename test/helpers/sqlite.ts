/**
 * The monitoring tests' SQLite access: better-sqlite3 through the few calls they make (the
 * package ships no types), and a read-only connection closed when the test ends, as a
 * dashboard or a user's own reader would open the file.
 */
import { createRequire } from 'node:module'
import type { Test } from 'tap'

export interface Db {
  prepare(sql: string): { get(...p: unknown[]): any; all(...p: unknown[]): any[]; run(...p: unknown[]): unknown }
  exec(sql: string): void
  pragma(sql: string): unknown
  close(): void
}

export const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string, options?: { readonly?: boolean }) => Db

/** A read-only connection to `path`, closed at the end of `t`. */
export function openDb(t: Test, path: string): Db {
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  return db
}
