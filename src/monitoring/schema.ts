/**
 * The monitoring database's schema (docs/monitoring.md "Storage"). Only the writer thread runs
 * this DDL; readers (the dashboard, a user's own SQL) just open the file.
 *
 * Every table is keyed by `run` (the workflow's integer key; `workflow.run_id` is the kernel's runId) first, because every dashboard
 * query is per workflow and retention deletes whole workflows. Times are ms since the epoch.
 */

/** Bumped when a table or column changes; the writer refuses a database with a newer version. */
export const SCHEMA_VERSION = 4

export const DDL = `
CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER NOT NULL
);

-- one row per kernel start
CREATE TABLE IF NOT EXISTS workflow (
  run         INTEGER PRIMARY KEY,    -- the key the other tables use: 8 bytes, not a 36-byte UUID per row and index entry
  run_id      TEXT NOT NULL UNIQUE,   -- the kernel's runId
  run_dir     TEXT NOT NULL,
  executors   TEXT NOT NULL,          -- JSON array of executor labels
  start_ms    INTEGER NOT NULL,
  end_ms      INTEGER,                -- NULL while running (or if the process died)
  counts      TEXT,                   -- JSON: tasks per final state, written at the end
  last_event_ms INTEGER,              -- the newest state change written (updated once per batch)
  tasks_ended INTEGER NOT NULL DEFAULT 0 -- tries that reached a final state so far (once per batch): the dashboard's rate
);
CREATE INDEX IF NOT EXISTS workflow_by_start ON workflow (start_ms);

-- one row per task: its latest state, and its latest try's times (a task that runs once, nearly
-- all of them, is this one row)
CREATE TABLE IF NOT EXISTS task (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  app         TEXT NOT NULL,
  executor    TEXT,                   -- NULL until one is chosen (and for join apps)
  state       TEXT NOT NULL,
  last_try    INTEGER NOT NULL DEFAULT 0, -- the number of its latest try
  submit_ms   INTEGER NOT NULL,
  launched_ms INTEGER,                -- its latest try's launch (NULL before it, and while a retry waits)
  running_ms  INTEGER,                -- its latest try's start on a worker
  end_ms      INTEGER,                -- set when the task reaches a final state
  error       TEXT,                   -- failed, dep_fail: "Name: message" of what it failed with
  error_stack TEXT,                   -- failed: the stack from where it ran, with its causes
  PRIMARY KEY (run, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_by_state ON task (run, state);
-- no (run, submit_ms) index: task ids are handed out at submission, so the primary key's order is
-- submit order; no (run, app) index: the app table lists a workflow's apps, and filters by app
-- read the workflow's rows. Each index fewer is a quarter less work per task for the writer
-- (files made by an earlier tsflow lose them too).
DROP INDEX IF EXISTS task_by_time;
DROP INDEX IF EXISTS task_by_app;

-- the apps of a workflow, a row each (written the first time the writer sees one)
CREATE TABLE IF NOT EXISTS app (
  run         INTEGER NOT NULL,
  app         TEXT NOT NULL,
  PRIMARY KEY (run, app)
) WITHOUT ROWID;

-- tries that failed and were retried (try numbers start at 0, as the channels' tryNumber); a
-- task's latest try is in its task row, and the try view below gives every try
CREATE TABLE IF NOT EXISTS earlier_try (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  try_number  INTEGER NOT NULL,
  executor    TEXT,
  launched_ms INTEGER,
  running_ms  INTEGER,
  end_ms      INTEGER,
  state       TEXT NOT NULL,          -- the try's last state
  fail_cause  TEXT,                   -- why it failed ("Name: message")
  fail_stack  TEXT,                   -- and the stack from where it ran
  PRIMARY KEY (run, task_id, try_number)
) WITHOUT ROWID;

-- every try of every task: the earlier ones, and the latest from its task row (a task that
-- launched, or ended without a dependency failure: memo_done and cancelled count as a try, as
-- before schema 4). Remade at every writer start, as the views below.
DROP VIEW IF EXISTS try;
CREATE VIEW try AS
  SELECT run, task_id, try_number, executor, launched_ms, running_ms, end_ms, state, fail_cause, fail_stack FROM earlier_try
  UNION ALL SELECT run, task_id, last_try, executor, launched_ms, running_ms, end_ms, state, error, error_stack FROM task
    WHERE launched_ms IS NOT NULL OR (end_ms IS NOT NULL AND state <> 'dep_fail');

-- the state changes no try column holds (pending, unsched, joining; retry and dep_wait records),
-- in order (rowid order is arrival order); task_history below gives every change
CREATE TABLE IF NOT EXISTS status (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  try_number  INTEGER NOT NULL,
  state       TEXT NOT NULL,
  time_ms     INTEGER NOT NULL,
  detail      TEXT                    -- dependency waits: how many futures
);
CREATE INDEX IF NOT EXISTS status_by_task ON status (run, task_id, time_ms);

-- every state change of a task: the status rows, and each try's launched, running and end as
-- rows; order by (time_ms, try_number, step) for the order they happened in
DROP VIEW IF EXISTS task_history;
CREATE VIEW task_history AS
  SELECT run, task_id, try_number, state, time_ms, detail,
         CASE state WHEN 'unsched' THEN 0 WHEN 'pending' THEN 1 WHEN 'dep_wait' THEN 2 WHEN 'joining' THEN 5 WHEN 'retry' THEN 7 ELSE 6 END AS step
    FROM status
  UNION ALL SELECT run, task_id, try_number, 'launched', launched_ms, NULL, 3 FROM earlier_try WHERE launched_ms IS NOT NULL
  UNION ALL SELECT run, task_id, try_number, 'running', running_ms, NULL, 4 FROM earlier_try WHERE running_ms IS NOT NULL
  UNION ALL SELECT run, task_id, try_number, state, end_ms, NULL, 6 FROM earlier_try WHERE end_ms IS NOT NULL
  UNION ALL SELECT run, task_id, last_try, 'launched', launched_ms, NULL, 3 FROM task WHERE launched_ms IS NOT NULL
  UNION ALL SELECT run, task_id, last_try, 'running', running_ms, NULL, 4 FROM task WHERE running_ms IS NOT NULL
  UNION ALL SELECT run, task_id, last_try, state, end_ms, NULL, 6 FROM task WHERE end_ms IS NOT NULL AND state <> 'dep_fail';

-- provider blocks: one row per state change (submitted, running, finished...)
CREATE TABLE IF NOT EXISTS block (
  run         INTEGER NOT NULL,
  executor    TEXT NOT NULL,
  block_id    TEXT NOT NULL,
  job_id      TEXT,
  state       TEXT NOT NULL,          -- submitted, pending, running, finished, failed, cancelled
  time_ms     INTEGER NOT NULL,
  reason      TEXT                    -- failed, cancelled: the provider's word, scale-in, shutdown; running: who said so
);
CREATE INDEX IF NOT EXISTS block_by_run ON block (run, executor, block_id, time_ms);

-- managers (nodes): registrations and losses
CREATE TABLE IF NOT EXISTS node (
  run         INTEGER NOT NULL,
  executor    TEXT NOT NULL,
  manager_id  TEXT NOT NULL,
  hostname    TEXT NOT NULL,
  block_id    TEXT,
  workers     INTEGER NOT NULL,
  event       TEXT NOT NULL,          -- registered, lost, stopped
  time_ms     INTEGER NOT NULL,
  reason      TEXT                    -- lost: why (missed heartbeats, its block ended...)
);
CREATE INDEX IF NOT EXISTS node_by_run ON node (run, manager_id, time_ms);

-- per-task resource samples taken by managers from /proc
CREATE TABLE IF NOT EXISTS resource (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  try_number  INTEGER NOT NULL,
  manager_id  TEXT NOT NULL,
  time_ms     INTEGER NOT NULL,
  cpu_user_s  REAL NOT NULL,
  cpu_system_s REAL NOT NULL,
  rss_bytes   INTEGER NOT NULL,
  read_bytes  INTEGER NOT NULL,
  write_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_by_task ON resource (run, task_id, time_ms);
CREATE INDEX IF NOT EXISTS resource_by_node ON resource (run, manager_id, time_ms);
`

/**
 * Columns added since version 1, for databases made by an earlier tsflow (CREATE TABLE IF NOT
 * EXISTS leaves their tables as they were): the writer adds the ones a table lacks.
 */
export const ADDED_COLUMNS: readonly (readonly [table: string, column: string, type: string])[] = [
  ['task', 'error', 'TEXT'],
  ['task', 'error_stack', 'TEXT'],
  ['try', 'fail_stack', 'TEXT'],
  ['block', 'reason', 'TEXT'],
  ['node', 'reason', 'TEXT'],
  ['workflow', 'last_event_ms', 'INTEGER'],
  ['workflow', 'tasks_ended', 'INTEGER NOT NULL DEFAULT 0'],
  ['task', 'launched_ms', 'INTEGER'],
  ['task', 'running_ms', 'INTEGER'],
]

/**
 * Version 4 keeps a task's latest try in its task row: a file from before has a `try` table
 * with every try. Run before the DDL (which makes `try` a view): the latest tries' times move
 * into the task rows (added by ADDED_COLUMNS first), the rest of the table becomes earlier_try,
 * and the app table is filled.
 */
export const TRY_TABLE_MIGRATION = `
UPDATE task SET
  launched_ms = (SELECT y.launched_ms FROM try y WHERE y.run = task.run AND y.task_id = task.task_id AND y.try_number = task.last_try),
  running_ms = (SELECT y.running_ms FROM try y WHERE y.run = task.run AND y.task_id = task.task_id AND y.try_number = task.last_try);
DELETE FROM try WHERE EXISTS (SELECT 1 FROM task t WHERE t.run = try.run AND t.task_id = try.task_id AND t.last_try = try.try_number);
ALTER TABLE try RENAME TO earlier_try;
CREATE TABLE IF NOT EXISTS app (run INTEGER NOT NULL, app TEXT NOT NULL, PRIMARY KEY (run, app)) WITHOUT ROWID;
INSERT OR IGNORE INTO app (run, app) SELECT DISTINCT run, app FROM task;
`

/** The tables retention deletes a workflow's rows from, the workflow row last. */
export const RUN_TABLES = ['status', 'earlier_try', 'task', 'app', 'block', 'node', 'resource', 'workflow'] as const
