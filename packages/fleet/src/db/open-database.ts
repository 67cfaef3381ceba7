import Database from 'better-sqlite3';

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** How long a writer waits for another connection's lock before SQLITE_BUSY, in ms (default 5000). */
  busyTimeoutMs?: number;
  /** Open read-only (the file must exist). */
  readonly?: boolean;
}

/**
 * Open kd-fleet's SQLite database (a file path, or `:memory:`) with write-ahead logging, foreign keys
 * enforced and a busy timeout, so the HTTP API and the MQTT handlers of one process, and a CLI
 * reading beside it, share it safely.
 * @example
 * const db = openDatabase(join(dataDir, 'fleet.db'));
 * migrate(db, [...coreMigrations, ...rolloutMigrations]);
 */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): Database.Database {
  if (typeof file !== 'string' || file === '') throw new TypeError('file must be a database path or ":memory:"');
  const busy = options.busyTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(busy) || busy < 0) throw new RangeError(`options.busyTimeoutMs must be an integer >= 0, got ${String(options.busyTimeoutMs)}`);
  const db = new Database(file, { readonly: options.readonly === true, fileMustExist: options.readonly === true, timeout: busy });
  try {
    db.pragma(`busy_timeout = ${busy}`);
    // :memory: databases stay in 'memory' mode; a read-only connection cannot switch the journal.
    if (options.readonly !== true) db.pragma('journal_mode = WAL');
    // NORMAL is durable across application crashes in WAL mode; only a power cut may lose the last commits.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
