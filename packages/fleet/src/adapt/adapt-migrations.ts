import type { Migration } from '../db/migrate.js';

/**
 * The adaptation jobs' tables (issue 16), for the fleet's migration runner after the core and rollout lists: each job's
 * latest state (one row per device and job id, typed columns for the figures a list shows, the whole message as JSON)
 * and the history of its states as received; then (`202`) the pull's one-time upload tokens and the packages' origin, and
 * (`203`) what became of each upload: the device's answer to its `adapt-upload` command and the refusal, if any.
 * Times are epoch milliseconds; devices are not foreign keys, so a job's record outlives a device removed from the registry.
 */
export const ADAPT_MIGRATIONS: readonly Migration[] = [
  {
    id: '201-adapt-jobs',
    sql: `
CREATE TABLE adapt_jobs (
  device_id          TEXT NOT NULL,
  job_id             TEXT NOT NULL,
  command_id         TEXT,
  state              TEXT NOT NULL,
  base_name          TEXT NOT NULL,
  base_version       TEXT NOT NULL,
  teacher_name       TEXT,
  teacher_version    TEXT,
  version            TEXT,
  epoch              INTEGER,
  epochs             INTEGER,
  losses_json        TEXT,
  holdout_before_map REAL,
  holdout_after_map  REAL,
  val_before_map     REAL,
  val_after_map      REAL,
  accepted           INTEGER CHECK (accepted IN (0, 1)),
  reasons_json       TEXT,
  activated          INTEGER CHECK (activated IN (0, 1)),
  code               TEXT,
  message            TEXT,
  fps_before         REAL,
  fps_during         REAL,
  peak_rss_mb        REAL,
  ts                 INTEGER NOT NULL,
  first_seen         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  message_json       TEXT NOT NULL,
  PRIMARY KEY (device_id, job_id)
);
CREATE INDEX adapt_jobs_state ON adapt_jobs (state, updated_at);
CREATE INDEX adapt_jobs_updated ON adapt_jobs (updated_at);
CREATE TABLE adapt_job_states (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id    TEXT NOT NULL,
  job_id       TEXT NOT NULL,
  ts           INTEGER NOT NULL,
  received_at  INTEGER NOT NULL,
  state        TEXT NOT NULL,
  message_json TEXT NOT NULL
);
CREATE INDEX adapt_job_states_job ON adapt_job_states (device_id, job_id, ts, id);
`,
  },
  {
    // Pulling an adapted package and promoting it: the one-time upload tokens (only their SHA-256 is kept, so the
    // database holds no usable credential), and each package's origin (a device and job) and promotion time.
    id: '202-adapt-uploads',
    sql: `
CREATE TABLE adapt_uploads (
  token_sha256 TEXT PRIMARY KEY,
  device_id    TEXT NOT NULL,
  job_id       TEXT NOT NULL,
  version      TEXT NOT NULL,
  command_id   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  used_at      INTEGER
);
CREATE INDEX adapt_uploads_job ON adapt_uploads (device_id, job_id);
ALTER TABLE packages ADD COLUMN origin_device TEXT;
ALTER TABLE packages ADD COLUMN origin_job TEXT;
ALTER TABLE packages ADD COLUMN promoted_at INTEGER;
`,
  },
  {
    // Where a pull stands, for the job's record (API, live events, dashboard): the device's last answer to the
    // adapt-upload command (`accepted`, `succeeded`, `failed`), and why the upload failed (the fleet's refusal of
    // the PUT, else the device's own error) so that an operator sees it without reading the server log.
    id: '203-adapt-pull-state',
    sql: `
ALTER TABLE adapt_uploads ADD COLUMN device_state TEXT;
ALTER TABLE adapt_uploads ADD COLUMN error_code TEXT;
ALTER TABLE adapt_uploads ADD COLUMN error_message TEXT;
CREATE INDEX adapt_uploads_command ON adapt_uploads (command_id);
CREATE INDEX packages_origin ON packages (origin_device, origin_job);
`,
  },
];
