import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import type { Migration } from '../db/migrate.js';
import type { RolloutInfo } from './rollout-types.js';

/** Stable codes of a {@link RolloutWarning}. */
export type RolloutWarningCode =
  /** Target devices report a TensorRT version for which the package has no int8 calibration cache: they build fp16. */
  | 'FLEET_TRT_NO_CACHE'
  /** The package's TensorRT files could not be read, so the coverage of the targets' versions is not known. */
  | 'FLEET_TRT_UNCHECKED';

/**
 * Something an operator should know about a rollout that was nevertheless started (a refusal would be an error):
 * e.g. devices that will serve fp16 because the package has no calibration cache for their TensorRT version.
 */
export interface RolloutWarning {
  code: RolloutWarningCode;
  message: string;
  /** The target devices concerned, by id. */
  devices: string[];
  /** The TensorRT version concerned (`FLEET_TRT_NO_CACHE`), as the devices report it. */
  tensorrt?: string;
}

/** A rollout as the API and the live `rollout` event show it: its record and the warnings recorded when it started. */
export interface RolloutWithWarnings extends RolloutInfo {
  /** [] when none were recorded (none found, or not checked yet: the check runs just after the rollout starts). */
  warnings: RolloutWarning[];
}

/** A rollout's record with the warnings `store` holds for it ([] without a store). */
export function rolloutWithWarnings(rollout: RolloutInfo, store: RolloutWarningStore | undefined): RolloutWithWarnings {
  return { ...rollout, warnings: store?.get(rollout.id) ?? [] };
}

/** Events of a {@link RolloutWarningStore}: `set` each time a rollout's warnings are recorded. */
export interface RolloutWarningStoreEvents {
  set: [rolloutId: string, warnings: RolloutWarning[]];
}

/**
 * The table of the warnings found when each rollout started, for the fleet's migration runner (with
 * {@link ROLLOUT_MIGRATIONS}, which it follows: it references `rollouts`).
 */
export const ROLLOUT_WARNING_MIGRATIONS: readonly Migration[] = [
  {
    id: '104-rollout-warnings',
    sql: `
CREATE TABLE rollout_warnings (
  rollout_id    TEXT PRIMARY KEY REFERENCES rollouts (id) ON DELETE CASCADE,
  warnings_json TEXT NOT NULL
);
`,
  },
];

/**
 * The warnings of each rollout as they were when it started (a snapshot: devices that change their TensorRT
 * afterwards do not change it), kept beside the rollout engine's tables. Each record is announced with a `set`
 * event, so live clients learn the warnings, which are found just after the rollout's own first event.
 * @example
 * const warnings = new RolloutWarningStore(db);
 * warnings.set(id, [{ code: 'FLEET_TRT_NO_CACHE', tensorrt: '8.2.1', devices: ['nano-1'], message: '…' }]);
 * warnings.get(id); // the list, [] for a rollout without warnings
 */
export class RolloutWarningStore extends EventEmitter<RolloutWarningStoreEvents> {
  readonly #set: Database.Statement<[string, string]>;
  readonly #get: Database.Statement<[string], string>;

  /** `db` must be migrated with {@link ROLLOUT_WARNING_MIGRATIONS}. */
  constructor(db: Database.Database) {
    super();
    if (typeof db !== 'object' || db === null || typeof db.prepare !== 'function') throw new TypeError('db must be a better-sqlite3 Database');
    this.#set = db.prepare('INSERT OR REPLACE INTO rollout_warnings (rollout_id, warnings_json) VALUES (?, ?)');
    this.#get = db.prepare<[string], string>('SELECT warnings_json FROM rollout_warnings WHERE rollout_id = ?').pluck();
  }

  /** Record the warnings of a rollout (replacing any recorded before); the rollout must exist. */
  set(rolloutId: string, warnings: readonly RolloutWarning[]): void {
    if (typeof rolloutId !== 'string' || rolloutId === '') throw new TypeError('rolloutId must be a rollout id');
    if (!Array.isArray(warnings)) throw new TypeError('warnings must be an array');
    this.#set.run(rolloutId, JSON.stringify(warnings));
    this.emit('set', rolloutId, [...warnings]);
  }

  /** The warnings recorded for a rollout; [] when none were (or it is unknown). */
  get(rolloutId: string): RolloutWarning[] {
    const json = this.#get.get(rolloutId);
    return json === undefined ? [] : (JSON.parse(json) as RolloutWarning[]);
  }
}
