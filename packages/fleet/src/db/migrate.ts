import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { FleetError } from './fleet-error.js';

/** One schema change: a stable id (e.g. `001-devices`, ordered within its list) and the SQL that makes it. */
export interface Migration {
  id: string;
  sql: string;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** Ids applied by this call, in order. */
  applied: string[];
  /** Ids that were already in the database. */
  skipped: string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/**
 * Bring a database up to the given migrations: each one not yet applied runs, in list order, in its
 * own transaction together with its row in `schema_migrations`, so a failure leaves the database as
 * the previous migration left it. A database holding a migration this code does not know was made by
 * a newer kd-fleet and is refused ('FLEET_DB_NEWER') before anything changes; an applied migration
 * whose SQL has since been edited is refused too ('FLEET_DB_MIGRATION_CHANGED'). Pass every list the
 * process uses in one call.
 * @example
 * migrate(db, [...coreMigrations, ...rolloutMigrations]);
 */
export function migrate(db: Database.Database, migrations: readonly Migration[]): MigrateResult {
  if (typeof db !== 'object' || db === null || typeof db.prepare !== 'function') throw new TypeError('db must be a better-sqlite3 Database');
  if (!Array.isArray(migrations)) throw new TypeError('migrations must be an array of {id, sql}');
  const known = new Map<string, string>();
  migrations.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.id !== 'string' || !ID_RE.test(m.id)) {
      throw new TypeError(`migrations[${i}].id must match ${ID_RE}, got ${JSON.stringify((m as Migration | null)?.id)}`);
    }
    if (typeof m.sql !== 'string' || m.sql.trim() === '') throw new TypeError(`migrations[${i}].sql must be SQL text`);
    if (known.has(m.id)) throw new RangeError(`migrations[${i}].id ${JSON.stringify(m.id)} appears twice`);
    known.set(m.id, checksum(m.sql));
  });

  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const rows = db.prepare('SELECT id, checksum FROM schema_migrations').all() as Array<{ id: string; checksum: string }>;
  const unknown = rows.filter((r) => !known.has(r.id)).map((r) => r.id);
  if (unknown.length > 0) {
    throw new FleetError(
      'FLEET_DB_NEWER',
      `the database has migrations this kd-fleet does not know (${unknown.sort().join(', ')}): it was written by a newer version; upgrade kd-fleet or use another data directory`,
    );
  }
  for (const r of rows) {
    if (known.get(r.id) !== r.checksum) {
      throw new FleetError('FLEET_DB_MIGRATION_CHANGED', `migration ${r.id} was applied with different SQL than this kd-fleet has; add a new migration instead of editing one`);
    }
  }

  const isApplied = db.prepare('SELECT 1 FROM schema_migrations WHERE id = ?').pluck();
  const record = db.prepare('INSERT INTO schema_migrations (id, checksum, applied_at) VALUES (?, ?, ?)');
  const result: MigrateResult = { applied: [], skipped: [] };
  for (const m of migrations) {
    // IMMEDIATE takes the write lock first, and the check inside it makes two processes migrating at once apply each step once.
    const step = db.transaction((): boolean => {
      if (isApplied.get(m.id) !== undefined) return false;
      db.exec(m.sql);
      record.run(m.id, known.get(m.id), new Date().toISOString());
      return true;
    });
    let applied: boolean;
    try {
      applied = step.immediate();
    } catch (err) {
      throw new FleetError('FLEET_DB_MIGRATION', `migration ${m.id} failed: ${(err as Error).message}`, { cause: err });
    }
    (applied ? result.applied : result.skipped).push(m.id);
  }
  return result;
}
