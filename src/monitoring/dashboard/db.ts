/**
 * The dashboard's read-only connection to the monitoring database (docs/monitoring.md
 * "Dashboard"). The writer thread owns the file in WAL mode; this side opens it read-only, so it
 * never takes a write lock and never blocks the writer, and every statement runs to completion
 * (no open cursor keeps an old snapshot, so the WAL can always be checkpointed).
 *
 * States it handles: the file missing (a clear error naming it), the file present but not yet
 * holding the schema (a workflow is creating it: serve nothing yet and look again on the next
 * request), a schema newer than this tsflow reads (an error saying to upgrade).
 */
import { createRequire } from 'node:module'
import { existsSync, statSync } from 'node:fs'
import { UsageError } from '../../errors.js'
import { SCHEMA_VERSION } from '../schema.js'

export interface Statement {
  all(...params: unknown[]): unknown[]
  get(...params: unknown[]): unknown
  raw(toggle?: boolean): Statement
}
export interface Database {
  prepare(source: string): Statement
  pragma(source: string, options?: { simple?: boolean }): unknown
  close(): void
}
const require = createRequire(import.meta.url)

/** What the user should do when there is no database (the CLI and the server say the same). */
export const NO_DB_HINT = 'run a workflow with `monitoring: { enabled: true }` first (it writes runinfo/monitoring.db), or name the database file'

/** Thrown for a database this tsflow cannot read (newer schema, not a monitoring database). */
export class DashboardDbError extends Error {}

/** Columns added after schema version 1 by other parts of issue 12, read only when present. */
export interface OptionalColumns {
  /** task.error, task.error_stack: the failed task's error and its remote stack */
  readonly taskError: boolean
  /** block.reason, node.reason */
  readonly blockReason: boolean
  readonly nodeReason: boolean
  /** workflow.last_event_ms and tasks_ended, kept by the writer once per batch */
  readonly workflowProgress: boolean
  /** the task_history view (every state change, from the status rows and the task and try times) */
  readonly taskHistory: boolean
  /** try.fail_stack: each failed try's remote stack */
  readonly tryStack: boolean
  /** schema 4: a task's latest try's times in its task row, earlier tries in earlier_try, the app table */
  readonly latestTryInTask: boolean
}

/**
 * One read-only connection, opened lazily and reopened if the schema was not there yet.
 * `version()` is SQLite's data_version: it changes whenever another connection commits.
 */
export class DashboardDb {
  private db: Database | undefined
  private cachedColumns: OptionalColumns | undefined
  private readonly statements = new Map<string, Statement>()

  constructor(readonly path: string) {
    if (!existsSync(path)) throw new UsageError(`no monitoring database at ${path}; ${NO_DB_HINT}`)
    if (!statSync(path).isFile()) throw new UsageError(`${path} is not a file; name a monitoring database (monitoring.db) or a run directory`)
  }

  /** The connection once the schema is in place; undefined while the database is being created. */
  connection(): Database | undefined {
    if (this.db) return this.db
    if (!existsSync(this.path)) throw new DashboardDbError(`the monitoring database ${this.path} was removed; ${NO_DB_HINT}`)
    const BetterSqlite3 = require('better-sqlite3') as new (path: string, options: { readonly: boolean; fileMustExist: boolean }) => Database
    const db = new BetterSqlite3(this.path, { readonly: true, fileMustExist: true })
    try {
      // Reads never wait on the writer in WAL mode; this only covers the moment a checkpoint resets the WAL.
      db.pragma('busy_timeout = 2000')
      const hasVersion = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'").get()
      const hasWorkflow = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'workflow'").get()
      if (!hasVersion || !hasWorkflow) {
        // A tsflow writer links the file into place with its schema, so an empty file is one
        // being made by hand or by another tool: look again later rather than fail.
        const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }
        if (tables.n > 0) throw new DashboardDbError(`${this.path} is not a tsflow monitoring database (it has tables but no schema_version/workflow table)`)
        db.close()
        return undefined
      }
      const row = db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }
      if (row.v !== null && row.v > SCHEMA_VERSION) {
        throw new DashboardDbError(`${this.path} has monitoring schema version ${row.v}, newer than this tsflow reads (${SCHEMA_VERSION}); run the tsflow that wrote it (upgrade this one)`)
      }
    } catch (error) {
      db.close()
      throw error
    }
    this.db = db
    return db
  }

  columns(): OptionalColumns {
    const db = this.connection()
    if (!db) return { taskError: false, blockReason: false, nodeReason: false, workflowProgress: false, taskHistory: false, tryStack: false, latestTryInTask: false }
    if (this.cachedColumns) return this.cachedColumns
    const has = (table: string, column: string) => (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).some((c) => c.name === column)
    const view = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?").get(name) !== undefined
    this.cachedColumns = {
      taskError: has('task', 'error') && has('task', 'error_stack'),
      blockReason: has('block', 'reason'),
      nodeReason: has('node', 'reason'),
      workflowProgress: has('workflow', 'last_event_ms') && has('workflow', 'tasks_ended'),
      taskHistory: view('task_history'),
      tryStack: has('try', 'fail_stack'),
      latestTryInTask: has('task', 'launched_ms') && has('earlier_try', 'try_number') && has('app', 'app'),
    }
    return this.cachedColumns
  }

  /** A prepared statement, made once per connection (the queries are a fixed set of texts). */
  statement(source: string): Statement | undefined {
    const db = this.connection()
    if (!db) return undefined
    let statement = this.statements.get(source)
    if (!statement) this.statements.set(source, (statement = db.prepare(source)))
    return statement
  }

  /** Changes whenever the writer commits; -1 while there is no schema yet. */
  version(): number {
    const db = this.connection()
    return db ? (db.pragma('data_version', { simple: true }) as number) : -1
  }

  close(): void {
    this.statements.clear()
    this.db?.close()
    this.db = undefined
  }
}
