import type { Migration } from '../db/migrate.js';

/**
 * The rollout engine's tables, for the fleet's migration runner: rollouts, their planned waves, and one
 * execution per (rollout, device). Times are epoch milliseconds. Devices are not foreign keys, so a
 * rollout's history outlives a device removed from the registry.
 */
export const ROLLOUT_MIGRATIONS: readonly Migration[] = [
  {
    id: '101-rollouts',
    sql: `
CREATE TABLE rollouts (
  id              TEXT PRIMARY KEY,
  package_name    TEXT NOT NULL,
  package_version TEXT NOT NULL,
  package_sha256  TEXT NOT NULL,
  spec_json       TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('running', 'paused', 'awaiting_approval', 'succeeded', 'aborted', 'failed')),
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  current_wave    INTEGER NOT NULL DEFAULT 0,
  reason          TEXT
);
CREATE INDEX rollouts_state ON rollouts (state);
`,
  },
  {
    id: '102-rollout-waves',
    sql: `
CREATE TABLE rollout_waves (
  rollout_id        TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  idx               INTEGER NOT NULL,
  device_ids_json   TEXT NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('pending', 'running', 'passed', 'below_threshold', 'aborted')),
  started_at        INTEGER,
  ended_at          INTEGER,
  gate_results_json TEXT,
  PRIMARY KEY (rollout_id, idx)
);
`,
  },
  {
    id: '103-executions',
    sql: `
CREATE TABLE executions (
  rollout_id          TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
  device_id           TEXT NOT NULL,
  wave                INTEGER NOT NULL,
  seq                 INTEGER NOT NULL,
  state               TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'accepted', 'downloading', 'verifying', 'activating',
                        'benchmarking', 'succeeded', 'failed', 'timed_out', 'rolled_back')),
  command_id          TEXT NOT NULL UNIQUE,
  sent_at             INTEGER,
  updated_at          INTEGER NOT NULL,
  code                TEXT,
  message             TEXT,
  bench_json          TEXT,
  device_state        TEXT,
  rollback_command_id TEXT UNIQUE,
  rollback_state      TEXT CHECK (rollback_state IN ('queued', 'sent', 'rolled_back', 'failed')),
  rollback_sent_at    INTEGER,
  rollback_code       TEXT,
  PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX executions_wave_state ON executions (rollout_id, wave, state);
CREATE INDEX executions_device ON executions (device_id);
`,
  },
];
