import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { compareSemver, silentLogger, type Logger, fsyncDir, fsyncTree, TMP_TAG, writeFileDurable } from '@kd-edge/core';
import { StoreError } from './store-error.js';
import { checkVersionInfo, parseVersionKey, versionKey, type VersionInfo } from './version-key.js';

/** Suffix of the marker file written beside a version folder once the folder is whole. */
export const COMPLETE_SUFFIX = '.complete';
const STATE_FILE = 'state.json';
const HISTORY_MAX = 50;

/** An installed, complete version. */
export interface StoredVersion {
  key: string;
  /** Absolute path of the extracted package folder. */
  dir: string;
  info: VersionInfo & { installedAt: string };
}

/** One change of the pointer, newest last in {@link StoreState.history}. */
export interface StoreHistoryEntry {
  at: string;
  action: 'activate' | 'rollback' | 'recover';
  key: string | null;
  from: string | null;
}

/** The highest version of one model name that has been active on this device, and the SHA-256 of its package. */
export interface HighWaterMark {
  version: string;
  sha256: string;
}

/** The content of `state.json`: the one pointer to the active and the previous version, and the anti-rollback marks. */
export interface StoreState {
  current: string | null;
  previous: string | null;
  history: StoreHistoryEntry[];
  /**
   * Per model name, the highest version ever active here (raised on activation, never lowered, kept when the
   * version itself is collected): the floor of the anti-rollback rule. Written in the same atomic replacement
   * as the pointer, so the two never disagree after a crash.
   */
  highWater: Record<string, HighWaterMark>;
}

/** What {@link ModelStore.recover} removed and repaired. */
export interface RecoverReport {
  /** Paths removed: staging leftovers, temporary files, incomplete versions, orphan markers. */
  removed: string[];
  /** One sentence per pointer that had to change, empty when state.json was sound. */
  repairs: string[];
}

/** Options of {@link ModelStore.open}. */
export interface ModelStoreOptions {
  logger?: Partial<Logger>;
}

/** Options of {@link ModelStore.gc}. */
export interface GcOptions {
  /** Also keep this many of the most recently installed other versions (default 0). */
  keep?: number;
  /** Also empty the downloads folder, dropping resumable partial downloads (default false). */
  downloads?: boolean;
}

interface MarkerJson {
  v: 1;
  key: string;
  name: string;
  version: string;
  sha256: string;
  installedAt: string;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (err: unknown) => (isMissing(err) ? false : Promise.reject(err)),
  );
}

function parseMarker(text: string, key: string): MarkerJson | undefined {
  try {
    const m = JSON.parse(text) as Partial<MarkerJson>;
    if (m === null || typeof m !== 'object' || m.key !== key) return undefined;
    if (typeof m.name !== 'string' || typeof m.version !== 'string' || typeof m.sha256 !== 'string' || typeof m.installedAt !== 'string') {
      return undefined;
    }
    return m as MarkerJson;
  } catch {
    return undefined;
  }
}

function parseState(text: string): StoreState | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (json === null || typeof json !== 'object') return undefined;
  const s = json as Record<string, unknown>;
  const pointer = (v: unknown): v is string | null => v === null || (typeof v === 'string' && parseVersionKey(v) !== undefined);
  if (!pointer(s.current) || !pointer(s.previous)) return undefined;
  const history = Array.isArray(s.history) ? (s.history.filter((h) => h !== null && typeof h === 'object') as StoreHistoryEntry[]) : [];
  // Absent in state files written before the marks existed: recover() seeds them from current and previous.
  const highWater: Record<string, HighWaterMark> = {};
  if (s.highWater !== null && typeof s.highWater === 'object' && !Array.isArray(s.highWater)) {
    for (const [name, m] of Object.entries(s.highWater as Record<string, unknown>)) {
      const mark = m as Partial<HighWaterMark> | null;
      if (typeof mark?.version === 'string' && typeof mark.sha256 === 'string') highWater[name] = { version: mark.version, sha256: mark.sha256 };
    }
  }
  return { current: s.current, previous: s.previous, history, highWater };
}

/**
 * The on-device model store: `versions/<name>@<version>-<sha8>/` holds each extracted, verified
 * package, a `<key>.complete` marker beside it (written last) says it is whole, and `state.json`
 * (`{current, previous, history}`) is the only pointer, replaced atomically (temporary file,
 * fsync, rename, fsync of the folder). So a crash at any moment leaves the old pointer or the new
 * one, each naming a complete version. One process owns a store; calls within it are serialised.
 * @example
 * const store = await ModelStore.open('/var/lib/kd-agent/models');
 * const staging = await store.stagingPath();
 * await extractTar(tarPath, staging);
 * await verifyPackage(staging, { trustedKeys });
 * const v = await store.install(staging, { name, version, sha256 });
 * await store.activate(v.key);
 */
export class ModelStore {
  /** Absolute root folder of the store. */
  readonly root: string;
  readonly #log: Logger;
  #state: StoreState = { current: null, previous: null, history: [], highWater: {} };
  readonly #versions = new Map<string, StoredVersion>();
  /** Staging paths handed out and not yet installed or released: gc leaves them alone. */
  readonly #staged = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(root: string, logger: Partial<Logger> | undefined) {
    this.root = root;
    this.#log = { ...silentLogger, ...logger };
  }

  /** Open (creating when needed) the store at `root` and {@link recover} it. */
  static async open(root: string, options: ModelStoreOptions = {}): Promise<ModelStore> {
    if (typeof root !== 'string' || root === '') throw new TypeError('root must be a folder path');
    const store = new ModelStore(resolve(root), options.logger);
    await mkdir(store.versionsDir, { recursive: true });
    await mkdir(store.stagingRoot, { recursive: true });
    await mkdir(store.downloadsDir, { recursive: true });
    await store.recover();
    return store;
  }

  /** Folder of the installed versions. */
  get versionsDir(): string {
    return join(this.root, 'versions');
  }

  /** Folder under which staging folders are made; emptied by {@link recover} and {@link gc}. */
  get stagingRoot(): string {
    return join(this.root, 'staging');
  }

  /** Folder for resumable downloads (`.part` files); unlike staging it survives a restart. */
  get downloadsDir(): string {
    return join(this.root, 'downloads');
  }

  /** Path of `state.json`. */
  get statePath(): string {
    return join(this.root, STATE_FILE);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #markerPath(key: string): string {
    return join(this.versionsDir, `${key}${COMPLETE_SUFFIX}`);
  }

  /**
   * Bring the store to a consistent state after a crash: empty staging, remove temporary files,
   * incomplete version folders (no marker) and orphan markers, then point `current` and
   * `previous` only at complete versions (a missing current falls back to previous, then to
   * null), and make sure the high-water marks cover both. A state.json that does not parse is kept
   * aside as `state.json.corrupt-*`.
   */
  recover(): Promise<RecoverReport> {
    return this.#serial(() => this.#recover());
  }

  async #recover(): Promise<RecoverReport> {
    const removed: string[] = [];
    const repairs: string[] = [];
    const remove = async (path: string): Promise<void> => {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    };

    this.#staged.clear();
    for (const name of await readdir(this.stagingRoot)) await remove(join(this.stagingRoot, name));
    for (const name of await readdir(this.root)) {
      if (name.startsWith(`.${STATE_FILE}${TMP_TAG}`)) await remove(join(this.root, name));
    }
    // Temporary siblings of download sidecars and chunk bitmaps (the .part files themselves are kept for a resume).
    for (const name of await readdir(this.downloadsDir)) {
      if (name.includes(TMP_TAG)) await remove(join(this.downloadsDir, name));
    }

    // Markers are removed before their folders (gc) and written after them (install), so a
    // folder without a marker is a torn install or a torn removal, and a marker without a folder
    // cannot happen except by hand.
    this.#versions.clear();
    const names = await readdir(this.versionsDir);
    const markers = new Set(names.filter((n) => n.endsWith(COMPLETE_SUFFIX)));
    for (const name of names) {
      const path = join(this.versionsDir, name);
      if (name.startsWith('.')) {
        await remove(path); // temporary marker files and extraction leftovers
        continue;
      }
      if (name.endsWith(COMPLETE_SUFFIX)) {
        const key = name.slice(0, -COMPLETE_SUFFIX.length);
        if (!names.includes(key)) await remove(path);
        continue;
      }
      if (parseVersionKey(name) === undefined) {
        this.#log.warn(`model store: leaving unknown entry ${path} alone`);
        continue;
      }
      const marker = markers.has(`${name}${COMPLETE_SUFFIX}`)
        ? parseMarker(await readFile(this.#markerPath(name), 'utf8').catch(() => ''), name)
        : undefined;
      const isDir = (await lstat(path)).isDirectory();
      if (marker === undefined || !isDir) {
        await rm(this.#markerPath(name), { force: true });
        await remove(path);
        continue;
      }
      this.#versions.set(name, this.#stored(marker));
    }
    await fsyncDir(this.versionsDir);

    let state = await this.#readState(repairs);
    const complete = (key: string | null): boolean => key !== null && this.#versions.has(key);
    const before = { current: state.current, previous: state.previous };
    if (state.previous !== null && !complete(state.previous)) {
      repairs.push(`previous version ${state.previous} is missing or incomplete; previous cleared`);
      state = { ...state, previous: null };
    }
    if (state.current !== null && !complete(state.current)) {
      repairs.push(
        `current version ${state.current} is missing or incomplete; ` +
          (state.previous === null ? 'no version is active' : `falling back to ${state.previous}`),
      );
      state = { ...state, current: state.previous, previous: null };
    }
    if (state.current === state.previous) state = { ...state, previous: null };
    // Whatever has been active is a floor, also in a state.json older than the marks.
    const highWater = [state.previous, state.current].reduce((marks, key) => (key === null ? marks : raise(marks, this.#versions.get(key)!)), state.highWater);
    const marksChanged = JSON.stringify(highWater) !== JSON.stringify(state.highWater);
    state = { ...state, highWater };
    if (state.current !== before.current || state.previous !== before.previous) {
      state = this.#withHistory(state, 'recover', state.current, before.current);
      await this.#writeState(state);
    } else if (marksChanged) {
      await this.#writeState(state);
    } else {
      this.#state = state;
    }
    for (const r of repairs) this.#log.warn(`model store: ${r}`);
    return { removed, repairs };
  }

  async #readState(repairs: string[]): Promise<StoreState> {
    let text: string;
    try {
      text = await readFile(this.statePath, 'utf8');
    } catch (err) {
      if (isMissing(err)) return { current: null, previous: null, history: [], highWater: {} };
      throw err;
    }
    const state = parseState(text);
    if (state !== undefined) return state;
    const aside = `${this.statePath}.corrupt-${randomBytes(4).toString('hex')}`;
    await rename(this.statePath, aside);
    repairs.push(`${STATE_FILE} did not parse; kept as ${aside} and started empty`);
    return { current: null, previous: null, history: [], highWater: {} };
  }

  #withHistory(state: StoreState, action: StoreHistoryEntry['action'], key: string | null, from: string | null): StoreState {
    const history = [...state.history, { at: new Date().toISOString(), action, key, from }].slice(-HISTORY_MAX);
    return { ...state, history };
  }

  async #writeState(state: StoreState): Promise<void> {
    await writeFileDurable(this.statePath, `${JSON.stringify(state, null, 2)}\n`);
    this.#state = state;
  }

  #stored(m: MarkerJson): StoredVersion {
    return {
      key: m.key,
      dir: join(this.versionsDir, m.key),
      info: { name: m.name, version: m.version, sha256: m.sha256, installedAt: m.installedAt },
    };
  }

  /**
   * A fresh path under `staging/` that does not exist yet (same file system as `versions/`, so
   * install is a rename), for tools that create their destination (core `extractTar`).
   */
  async stagingPath(): Promise<string> {
    await mkdir(this.stagingRoot, { recursive: true });
    const path = join(this.stagingRoot, `s-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
    this.#staged.add(path);
    return path;
  }

  /** Delete a staging folder that will not be installed (a failed verification, say). */
  async releaseStaging(path: string): Promise<void> {
    const abs = resolve(path);
    this.#staged.delete(abs);
    await rm(abs, { recursive: true, force: true });
  }

  /**
   * Move a staged package folder into `versions/<key>/` and mark it complete: the files are
   * fsynced, the folder renamed, then the marker written durably, last. When the version is
   * already installed with the same SHA-256 the staging folder is dropped and the installed one
   * returned. The staged `manifest.json` must name `info.name` and `info.version`. The caller
   * verifies the package before installing (core `verifyPackage`).
   */
  install(stagingDir: string, info: VersionInfo): Promise<StoredVersion> {
    if (typeof stagingDir !== 'string' || stagingDir === '') throw new TypeError('stagingDir must be a folder path');
    checkVersionInfo(info);
    return this.#serial(() => this.#install(resolve(stagingDir), info));
  }

  async #install(staging: string, info: VersionInfo): Promise<StoredVersion> {
    const key = versionKey(info);
    const have = this.#versions.get(key);
    if (have !== undefined) {
      if (have.info.sha256 !== info.sha256) {
        throw new StoreError('STORE_CONFLICT', `${key} is installed from a package with SHA-256 ${have.info.sha256}, not ${info.sha256}`, { key });
      }
      await rm(staging, { recursive: true, force: true });
      this.#staged.delete(staging);
      return have;
    }
    const st = await lstat(staging).catch((err: unknown) => {
      if (isMissing(err)) throw new StoreError('STORE_STAGING_INVALID', `staging folder ${staging} does not exist`, { key });
      throw err;
    });
    if (!st.isDirectory()) throw new StoreError('STORE_STAGING_INVALID', `${staging} is not a folder`, { key });
    let manifest: { name?: unknown; version?: unknown };
    try {
      manifest = JSON.parse(await readFile(join(staging, 'manifest.json'), 'utf8')) as typeof manifest;
    } catch (err) {
      throw new StoreError('STORE_STAGING_INVALID', `${staging} holds no readable manifest.json: ${(err as Error).message}`, { key, cause: err });
    }
    if (manifest.name !== info.name || manifest.version !== info.version) {
      throw new StoreError(
        'STORE_INFO_MISMATCH',
        `the staged manifest is ${String(manifest.name)}@${String(manifest.version)}, but install was asked for ${info.name}@${info.version}`,
        { key },
      );
    }

    const dir = join(this.versionsDir, key);
    await fsyncTree(staging);
    // A folder without a marker is a torn earlier attempt: nothing points at it.
    if (await exists(dir)) await rm(dir, { recursive: true, force: true });
    try {
      await rename(staging, dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') {
        throw new StoreError('STORE_CROSS_DEVICE', `${staging} is on another file system than ${this.versionsDir}; stage under ${this.stagingRoot}`, {
          key,
          cause: err,
        });
      }
      throw err;
    }
    await fsyncDir(this.versionsDir);
    await fsyncDir(dirname(staging));
    this.#staged.delete(staging);
    const marker: MarkerJson = { v: 1, key, name: info.name, version: info.version, sha256: info.sha256, installedAt: new Date().toISOString() };
    await writeFileDurable(this.#markerPath(key), `${JSON.stringify(marker)}\n`);
    const stored = this.#stored(marker);
    this.#versions.set(key, stored);
    return stored;
  }

  /**
   * Make `key` current and the old current previous, and raise its name's high-water mark to its version, in one
   * atomic replacement of state.json; activating the current version changes nothing.
   */
  activate(key: string): Promise<StoredVersion> {
    if (typeof key !== 'string' || key === '') throw new TypeError('key must be a version key');
    return this.#serial(async () => {
      const v = this.#requireComplete(key);
      const s = this.#state;
      if (s.current === key) return v;
      await this.#writeState(this.#withHistory({ ...s, current: key, previous: s.current, highWater: raise(s.highWater, v) }, 'activate', key, s.current));
      return v;
    });
  }

  /** The anti-rollback floor of a model name: the highest version ever active on this device, or undefined for a name never active. */
  highWater(name: string): HighWaterMark | undefined {
    const mark = this.#state.highWater[name];
    return mark === undefined ? undefined : { ...mark };
  }

  /** Swap current and previous atomically and return the version now current; STORE_NO_PREVIOUS when there is none. */
  rollback(): Promise<StoredVersion> {
    return this.#serial(async () => {
      const s = this.#state;
      if (s.previous === null) throw new StoreError('STORE_NO_PREVIOUS', 'there is no previous version to roll back to');
      const v = this.#requireComplete(s.previous);
      await this.#writeState(this.#withHistory({ ...s, current: s.previous, previous: s.current }, 'rollback', s.previous, s.current));
      return v;
    });
  }

  #requireComplete(key: string): StoredVersion {
    const v = this.#versions.get(key);
    if (v === undefined) throw new StoreError('STORE_NOT_INSTALLED', `${key} is not an installed, complete version`, { key });
    return v;
  }

  /** The active version, or null. */
  current(): StoredVersion | null {
    return this.#state.current === null ? null : (this.#versions.get(this.#state.current) ?? null);
  }

  /** The version a rollback returns to, or null. */
  previous(): StoredVersion | null {
    return this.#state.previous === null ? null : (this.#versions.get(this.#state.previous) ?? null);
  }

  /** A copy of the pointer as last written. */
  state(): StoreState {
    const highWater = Object.fromEntries(Object.entries(this.#state.highWater).map(([name, m]) => [name, { ...m }]));
    return { current: this.#state.current, previous: this.#state.previous, history: this.#state.history.map((h) => ({ ...h })), highWater };
  }

  /** The installed version with this key, or undefined. */
  get(key: string): StoredVersion | undefined {
    return this.#versions.get(key);
  }

  /** Every complete version, oldest install first. */
  list(): StoredVersion[] {
    return [...this.#versions.values()].sort((a, b) => a.info.installedAt.localeCompare(b.info.installedAt) || a.key.localeCompare(b.key));
  }

  /**
   * Delete every version that is neither current nor previous (nor among the `keep` newest
   * others), and empty staging. The marker goes first, so a crash mid-way leaves an incomplete
   * folder that {@link recover} removes. Staging paths handed out and not yet installed or
   * released are kept. Returns the keys deleted.
   */
  gc(options: GcOptions = {}): Promise<string[]> {
    const keep = options.keep ?? 0;
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`options.keep must be an integer >= 0, got ${String(options.keep)}`);
    return this.#serial(async () => {
      const pinned = new Set([this.#state.current, this.#state.previous]);
      const others = this.list().filter((v) => !pinned.has(v.key));
      const doomed = others.slice(0, Math.max(0, others.length - keep));
      for (const v of doomed) {
        this.#versions.delete(v.key);
        await rm(this.#markerPath(v.key), { force: true });
        await fsyncDir(this.versionsDir);
        await rm(v.dir, { recursive: true, force: true });
      }
      for (const name of await readdir(this.stagingRoot)) {
        const path = join(this.stagingRoot, name);
        // A path handed out but not installed yet belongs to a deploy in progress; its temporary
        // extraction siblings (".<name>.extract-*") too.
        const owner = [...this.#staged].find((p) => path === p || name.startsWith(`.${p.slice(this.stagingRoot.length + 1)}.`));
        if (owner === undefined) await rm(path, { recursive: true, force: true });
      }
      if (options.downloads === true) {
        for (const name of await readdir(this.downloadsDir)) await rm(join(this.downloadsDir, name), { recursive: true, force: true });
      }
      return doomed.map((v) => v.key);
    });
  }
}

/** The marks with `v`'s name raised to `v` when `v` is not older (an equal version records the bytes now active). */
function raise(marks: Record<string, HighWaterMark>, v: StoredVersion): Record<string, HighWaterMark> {
  const mark = marks[v.info.name];
  if (mark !== undefined && compareSemver(v.info.version, mark.version) < 0) return marks;
  return { ...marks, [v.info.name]: { version: v.info.version, sha256: v.info.sha256 } };
}
