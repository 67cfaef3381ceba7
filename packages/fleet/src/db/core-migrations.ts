import type { Migration } from './migrate.js';

/**
 * The schema of the registry, device and benchmark tables, in order. Times are milliseconds since the
 * epoch (the components' `now()`); JSON columns hold the message as received.
 */
export const coreMigrations: readonly Migration[] = Object.freeze([
  {
    id: '001-devices',
    sql: `
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  fleet TEXT NOT NULL,
  online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  status_json TEXT,
  agent_version TEXT,
  active_name TEXT,
  active_version TEXT,
  active_sha256 TEXT,
  last_event_json TEXT,
  last_event_at INTEGER,
  removed_at INTEGER
);
CREATE INDEX devices_active ON devices (active_name, active_version);
CREATE TABLE device_tags (
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (device_id, tag)
) WITHOUT ROWID;
CREATE INDEX device_tags_tag ON device_tags (tag, device_id);
`,
  },
  {
    id: '002-packages',
    sql: `
CREATE TABLE packages (
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  manifest_json TEXT NOT NULL,
  path TEXT NOT NULL,
  pushed_at INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  UNIQUE (name, version)
);
CREATE INDEX packages_sha256 ON packages (sha256);
`,
  },
  {
    id: '003-bench-reports',
    sql: `
CREATE TABLE bench_reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  ts INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  command_id TEXT,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  runtime TEXT NOT NULL,
  p50 REAL NOT NULL,
  p95 REAL NOT NULL,
  fps REAL NOT NULL,
  power_mw REAL,
  temp_c REAL,
  map50 REAL,
  json TEXT NOT NULL
);
CREATE INDEX bench_reports_device_ts ON bench_reports (device_id, ts);
`,
  },
  {
    // Issue 16: the device's own public key, pinned on first sight (key_*), and a different one it reported
    // later that no operator has accepted yet (key_mismatch_*). Null for devices whose agent reports none.
    id: '004-device-keys',
    sql: `
ALTER TABLE devices ADD COLUMN key_id TEXT;
ALTER TABLE devices ADD COLUMN key_pem TEXT;
ALTER TABLE devices ADD COLUMN key_pinned_at INTEGER;
ALTER TABLE devices ADD COLUMN key_mismatch_id TEXT;
ALTER TABLE devices ADD COLUMN key_mismatch_pem TEXT;
ALTER TABLE devices ADD COLUMN key_mismatch_at INTEGER;
`,
  },
]);
