/**
 * Opening the monitoring database for the writer thread (writer-thread.ts): a new file is made
 * complete under a temporary name and linked into place, WAL mode and the schema, and a file of an
 * earlier schema version is migrated first (docs/monitoring.md "Schema").
 */
import { createRequire } from 'node:module'
import { existsSync, linkSync, mkdirSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { threadId } from 'node:worker_threads'
import { ADDED_COLUMNS, DDL, SCHEMA_VERSION, TRY_TABLE_MIGRATION } from './schema.js'

// The few better-sqlite3 calls used here (the package ships no types, and one interface is less
// than a dev dependency).
export interface Statement {
  run(...params: unknown[]): { changes: number }
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
}
export interface Database {
  pragma(source: string): unknown
  exec(source: string): void
  prepare(source: string): Statement
  transaction<F extends (...args: never[]) => void>(fn: F): F & { immediate: F }
  close(): void
}
const require = createRequire(import.meta.url)

/** Opens a database file, WAL, with the schema; for a new one the schema is written too. */
function openWal(path: string): Database {
  const BetterSqlite3 = require('better-sqlite3') as new (path: string) => Database
  const db = new BetterSqlite3(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  // 16 MiB of page cache (default 2): a long run's indexes outgrow 2 MiB and inserts would read pages back.
  db.pragma('cache_size = -16384')
  // Another writer (a second workflow using the same file) may hold the lock for one batch.
  db.pragma('busy_timeout = 10000')
  // One transaction: the DDL drops and remakes the views, and a reader of the file (the dashboard)
  // must never see it without them. IMMEDIATE takes the write lock first (waiting for another
  // writer's batch), so the reads below never meet a newer commit they cannot write after.
  db.transaction(() => {
    migrate(db, path)
    db.exec(DDL)
    const row = db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }
    if (row.v === null) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION)
  }).immediate()
  return db
}

/**
 * Brings an earlier version's tables up to this one, before the DDL runs: columns are added, and
 * a version 3 (or older) `try` table with every try becomes earlier_try (TRY_TABLE_MIGRATION).
 */
function migrate(db: Database, path: string): void {
  const kind = (name: string) => (db.prepare('SELECT type FROM sqlite_master WHERE name = ?').get(name) as { type: string } | undefined)?.type
  if (kind('schema_version') !== 'table') return
  const version = (db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }).v
  if (version === null || version === SCHEMA_VERSION) return
  if (version > SCHEMA_VERSION) throw new Error(`${path} has monitoring schema version ${version}; this tsflow writes version ${SCHEMA_VERSION}`)
  db.transaction(() => {
    for (const [table, column, type] of ADDED_COLUMNS) {
      if (kind(table) !== 'table') continue
      const columns = db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]
      if (!columns.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`)
    }
    if (kind('try') === 'table') {
      // the views name the old table; they are remade by the DDL
      db.exec('DROP VIEW IF EXISTS task_history')
      db.exec(TRY_TABLE_MIGRATION)
    }
    db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION)
  })()
}

/**
 * A new database is made under a temporary name and linked into place complete (WAL mode and
 * schema), because a reader opening the file while the writer switches a fresh file to WAL gets
 * SQLITE_BUSY: readers only ever see a WAL database with its tables. link() rather than rename()
 * so that a file another workflow's writer put there first is kept.
 */
export function open(path: string): Database {
  mkdirSync(dirname(path), { recursive: true })
  if (!existsSync(path)) {
    const temporary = `${path}.${process.pid}.${threadId}.new`
    openWal(temporary).close()
    try {
      linkSync(temporary, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    } finally {
      rmSync(temporary, { force: true })
    }
  }
  return openWal(path)
}
