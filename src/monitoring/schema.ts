/**
 * The monitoring database's schema (docs/monitoring.md "Storage"). Only the writer thread runs
 * this DDL; readers (the dashboard, a user's own SQL) just open the file.
 *
 * Every table is keyed by `run` (the workflow's integer key; `workflow.run_id` is the kernel's runId) first, because every dashboard
 * query is per workflow and retention deletes whole workflows. Times are ms since the epoch.
 */

/** Bumped when a table or column changes; the writer refuses a database with a newer version. */
export const SCHEMA_VERSION = 3

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

-- one row per task: its latest state, updated as it moves
CREATE TABLE IF NOT EXISTS task (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  app         TEXT NOT NULL,
  executor    TEXT,                   -- NULL until one is chosen (and for join apps)
  state       TEXT NOT NULL,
  last_try    INTEGER NOT NULL DEFAULT 0, -- the number of its latest try
  submit_ms   INTEGER NOT NULL,
  end_ms      INTEGER,                -- set when the task reaches a final state
  error       TEXT,                   -- failed, dep_fail: "Name: message" of what it failed with
  error_stack TEXT,                   -- failed: the stack from where it ran, with its causes
  PRIMARY KEY (run, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_by_state ON task (run, state);
CREATE INDEX IF NOT EXISTS task_by_app ON task (run, app);
-- no (run, submit_ms) index: task ids are handed out at submission, so the primary key's order is
-- submit order; an index fewer is a quarter less work per task for the writer (files made by
-- an earlier tsflow lose it too)
DROP INDEX IF EXISTS task_by_time;

-- one row per try of a task (try numbers start at 0, as the channels' tryNumber)
CREATE TABLE IF NOT EXISTS try (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  try_number  INTEGER NOT NULL,
  executor    TEXT,
  launched_ms INTEGER,
  running_ms  INTEGER,
  end_ms      INTEGER,
  state       TEXT NOT NULL,          -- the try's last state
  fail_cause  TEXT,                   -- why it failed ("Name: message"): a retried try's cause, a final try's error
  fail_stack  TEXT,                   -- and the stack from where it ran
  PRIMARY KEY (run, task_id, try_number)
) WITHOUT ROWID;

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
-- (remade at every writer start, so a file gets the current definition)
DROP VIEW IF EXISTS task_history;
CREATE VIEW task_history AS
  SELECT run, task_id, try_number, state, time_ms, detail,
         CASE state WHEN 'unsched' THEN 0 WHEN 'pending' THEN 1 WHEN 'dep_wait' THEN 2 WHEN 'joining' THEN 5 WHEN 'retry' THEN 7 ELSE 6 END AS step
    FROM status
  UNION ALL SELECT run, task_id, try_number, 'launched', launched_ms, NULL, 3 FROM try WHERE launched_ms IS NOT NULL
  UNION ALL SELECT run, task_id, try_number, 'running', running_ms, NULL, 4 FROM try WHERE running_ms IS NOT NULL
  UNION ALL SELECT run, task_id, try_number, state, end_ms, NULL, 6 FROM try WHERE end_ms IS NOT NULL;

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
]

/** The tables retention deletes a workflow's rows from, the workflow row last. */
export const RUN_TABLES = ['status', 'try', 'task', 'block', 'node', 'resource', 'workflow'] as const
