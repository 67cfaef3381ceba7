import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreMigrations } from '../src/db/core-migrations.js';
import { FleetError } from '../src/db/fleet-error.js';
import { migrate, type Migration } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { tempDir } from './registry-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kd-fleet-db-'));
});
afterEach(async () => cleanup());

function tables(db: ReturnType<typeof openDatabase>): string[] {
  return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
}

function columns(db: ReturnType<typeof openDatabase>, table: string): string[] {
  return (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name);
}

const extra: Migration = { id: '101-rollouts', sql: 'CREATE TABLE rollouts (id TEXT PRIMARY KEY, state TEXT NOT NULL);' };

describe('openDatabase', () => {
  it('opens a file with WAL, foreign keys and a busy timeout', () => {
    const db = openDatabase(join(dir, 'fleet.db'), { busyTimeoutMs: 1234 });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    } finally {
      db.close();
    }
  });

  it('checks its arguments', () => {
    expect(() => openDatabase('')).toThrow(TypeError);
    expect(() => openDatabase(':memory:', { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
  });
});

describe('migrate', () => {
  it('creates the core tables on a fresh database, and a re-run changes nothing', () => {
    const file = join(dir, 'fleet.db');
    const db = openDatabase(file);
    const first = migrate(db, coreMigrations);
    expect(first.applied).toEqual(['001-devices', '002-packages', '003-bench-reports', '004-device-keys']);
    expect(tables(db)).toEqual(['bench_reports', 'device_tags', 'devices', 'packages', 'schema_migrations']);
    expect(columns(db, 'devices')).toEqual(expect.arrayContaining([
      'id', 'fleet', 'online', 'first_seen', 'last_seen', 'status_json', 'agent_version', 'active_name', 'active_version', 'active_sha256',
      'key_id', 'key_pem', 'key_pinned_at', 'key_mismatch_id', 'key_mismatch_pem', 'key_mismatch_at',
    ]));
    expect(columns(db, 'packages')).toEqual(['name', 'version', 'sha256', 'size', 'manifest_json', 'path', 'pushed_at', 'key_id']);
    expect(columns(db, 'bench_reports')).toEqual(expect.arrayContaining(['id', 'device_id', 'ts', 'name', 'version', 'runtime', 'p50', 'p95', 'fps', 'power_mw', 'temp_c', 'json']));
    const benchIndex = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bench_reports'").pluck().all() as string[];
    expect(benchIndex.some((s) => /\(device_id, ts\)/.test(s))).toBe(true);
    db.close();

    const again = openDatabase(file);
    expect(migrate(again, coreMigrations)).toEqual({ applied: [], skipped: ['001-devices', '002-packages', '003-bench-reports', '004-device-keys'] });
    expect(again.prepare('SELECT COUNT(*) FROM schema_migrations').pluck().get()).toBe(4);
    again.close();
  });

  it('adds the device-key columns to a database of the three first migrations, keeping its devices', () => {
    const db = openDatabase(join(dir, 'fleet.db'));
    migrate(db, coreMigrations.slice(0, 3));
    db.prepare("INSERT INTO devices (id, fleet, online, first_seen, last_seen) VALUES ('cam-1', 'lab', 1, 1, 2)").run();
    expect(migrate(db, coreMigrations).applied).toEqual(['004-device-keys']);
    expect(db.prepare("SELECT id, last_seen, key_id, key_mismatch_id FROM devices").all()).toEqual([{ id: 'cam-1', last_seen: 2, key_id: null, key_mismatch_id: null }]);
    db.close();
  });

  it('applies only the new migrations of a longer list', () => {
    const db = openDatabase(join(dir, 'fleet.db'));
    migrate(db, coreMigrations);
    expect(migrate(db, [...coreMigrations, extra]).applied).toEqual(['101-rollouts']);
    expect(tables(db)).toContain('rollouts');
    db.close();
  });

  it('refuses a database written by a newer kd-fleet, before changing anything', () => {
    const db = openDatabase(join(dir, 'fleet.db'));
    migrate(db, [coreMigrations[0]!, extra]);
    const before = tables(db);
    let err: unknown;
    try {
      migrate(db, coreMigrations);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).code).toBe('FLEET_DB_NEWER');
    expect((err as FleetError).message).toContain('101-rollouts');
    expect(tables(db)).toEqual(before); // 002 and 003 were not applied
    db.close();
  });

  it('refuses an applied migration whose SQL was edited', () => {
    const db = openDatabase(':memory:');
    migrate(db, [extra]);
    expect(() => migrate(db, [{ id: extra.id, sql: `${extra.sql}\nCREATE INDEX r_state ON rollouts (state);` }])).toThrow(
      expect.objectContaining({ code: 'FLEET_DB_MIGRATION_CHANGED' }),
    );
    db.close();
  });

  it('rolls a failing migration back whole and records nothing of it', () => {
    const db = openDatabase(':memory:');
    const broken: Migration = { id: '002-broken', sql: 'CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);' };
    expect(() => migrate(db, [extra, broken])).toThrow(expect.objectContaining({ code: 'FLEET_DB_MIGRATION', message: expect.stringContaining('002-broken') }));
    expect(tables(db)).toEqual(['rollouts', 'schema_migrations']);
    expect(db.prepare('SELECT id FROM schema_migrations').pluck().all()).toEqual(['101-rollouts']);
    db.close();
  });

  it('checks the migration list', () => {
    const db = openDatabase(':memory:');
    expect(() => migrate(db, [extra, extra])).toThrow(RangeError);
    expect(() => migrate(db, [{ id: '../x', sql: 'SELECT 1' }])).toThrow(TypeError);
    expect(() => migrate(db, [{ id: '001-x', sql: '  ' }])).toThrow(TypeError);
    db.close();
  });

  it('enforces the schema: foreign keys, unique package versions, cascading tags', () => {
    const db = openDatabase(':memory:');
    migrate(db, coreMigrations);
    expect(() => db.prepare("INSERT INTO device_tags (device_id, tag) VALUES ('ghost', 'x')").run()).toThrow(/FOREIGN KEY/);
    db.prepare("INSERT INTO devices (id, fleet, online, first_seen, last_seen) VALUES ('d1', 'lab', 1, 0, 0)").run();
    db.prepare("INSERT INTO device_tags (device_id, tag) VALUES ('d1', 'x')").run();
    const pkg = db.prepare("INSERT INTO packages (name, version, sha256, size, manifest_json, path, pushed_at, key_id) VALUES ('m', '1.0.0', ?, 1, '{}', 'p', 0, 'k')");
    pkg.run('a'.repeat(64));
    expect(() => pkg.run('b'.repeat(64))).toThrow(/UNIQUE/);
    db.prepare("DELETE FROM devices WHERE id = 'd1'").run();
    expect(db.prepare('SELECT COUNT(*) FROM device_tags').pluck().get()).toBe(0);
    db.close();
  });
});
