/**
 * The monitoring database's schema (docs/monitoring.md "Storage"). Only the writer thread runs
 * this DDL; readers (the dashboard, a user's own SQL) just open the file.
 *
 * Every table is keyed by `run` (the workflow's integer key; `workflow.run_id` is the kernel's runId) first, because every dashboard
 * query is per workflow and retention deletes whole workflows. Times are ms since the epoch.
 */

/** Bumped when a table or column changes; the writer refuses a database with a newer version. */
export const SCHEMA_VERSION = 2

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
  counts      TEXT                    -- JSON: tasks per final state, written at the end
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
CREATE INDEX IF NOT EXISTS task_by_time ON task (run, submit_ms);

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

-- every state change, in order (rowid order is arrival order)
CREATE TABLE IF NOT EXISTS status (
  run         INTEGER NOT NULL,
  task_id     INTEGER NOT NULL,
  try_number  INTEGER NOT NULL,
  state       TEXT NOT NULL,
  time_ms     INTEGER NOT NULL,
  detail      TEXT                    -- dependency waits: how many futures
);
CREATE INDEX IF NOT EXISTS status_by_task ON status (run, task_id, time_ms);

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
]

/** The tables retention deletes a workflow's rows from, the workflow row last. */
export const RUN_TABLES = ['status', 'try', 'task', 'block', 'node', 'resource', 'workflow'] as const
