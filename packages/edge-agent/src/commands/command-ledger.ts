import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TMP_TAG, writeFileDurable } from '@kd-edge/core';

/** One command as the agent remembers it: enough to answer a repeat and to resume after a crash. */
export interface LedgerEntry {
  id: string;
  command: string;
  /** The command message as received (resumed after a restart when not final). */
  message: unknown;
  receivedAt: string;
  /** The last event published for it. */
  last?: Record<string, unknown>;
  final: boolean;
}

/** What {@link CommandLedger.admit} found: the entry, and whether this call created it. */
export interface Admission {
  entry: LedgerEntry;
  /** True when the id was new and this call recorded it; false for a repeat. */
  fresh: boolean;
}

const FINAL_STATES = new Set(['succeeded', 'failed', 'rolled_back']);

/** True for the events that end a command. */
export function isFinalState(state: string): boolean {
  return FINAL_STATES.has(state);
}

/**
 * Commands by id on disk, so a command is done once however often it arrives (a QoS 1 redelivery, a
 * fleet retry, a restart): a repeat of a finished one is answered with its final event, and one cut
 * short by a crash is resumed. Operations on one id run one at a time, so two copies of a command
 * arriving together cannot both be admitted, and a late progress event cannot reopen a finished one.
 * Files are named by the SHA-256 of the id (any id of the protocol's 128 characters fits a file name)
 * and written durably; the oldest finished ones are pruned.
 */
export class CommandLedger {
  readonly #locks = new Map<string, Promise<unknown>>();

  private constructor(private readonly dir: string, private readonly keep: number) {}

  /** Opens (creates) the ledger folder, removing temporary files a crash left and renaming files of the older id-in-hex naming. */
  static async open(dir: string, keep = 500): Promise<CommandLedger> {
    await mkdir(dir, { recursive: true });
    const ledger = new CommandLedger(dir, keep);
    await ledger.#tidy();
    return ledger;
  }

  /** The entry of a command id, if seen. */
  async get(id: string): Promise<LedgerEntry | undefined> {
    return readEntry(this.file(id));
  }

  /**
   * Returns the entry of `id`, recording a new one when there is none. Atomic per id: of several calls with
   * one id, however they interleave, exactly one gets `fresh: true`.
   */
  admit(id: string, command: string, message: unknown): Promise<Admission> {
    return this.#serial(id, async () => {
      const seen = await this.get(id);
      if (seen !== undefined) return { entry: seen, fresh: false };
      const entry: LedgerEntry = { id, command, message, receivedAt: new Date().toISOString(), final: false };
      await this.#write(entry);
      return { entry, fresh: true };
    });
  }

  /** Records the latest event of a command: final ones close it, and nothing reopens a closed one. */
  record(id: string, event: Record<string, unknown>): Promise<void> {
    return this.#serial(id, async () => {
      const entry = await this.get(id);
      if (entry === undefined) return;
      const final = typeof event.state === 'string' && isFinalState(event.state);
      // A progress event sent without waiting may land after the final one; the outcome stays.
      if (entry.final && !final) return;
      entry.last = event;
      entry.final = final;
      await this.#write(entry);
    });
  }

  /** Commands received but not finished (the agent was stopped or killed during them), oldest first. */
  async unfinished(): Promise<LedgerEntry[]> {
    const entries = await this.#all();
    return entries.filter((e) => !e.final).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  /**
   * Once the folder holds more than `keep` entries, deletes the oldest finished ones down to `keep` less a
   * tenth. Called after every command: below the limit it only lists the folder, and the margin means the
   * entries are read once per `keep / 10` commands, not on every command.
   */
  async prune(): Promise<number> {
    const names = (await readdir(this.dir)).filter(isEntryName);
    if (names.length <= this.keep) return 0;
    const finished = (await this.#all()).filter((e) => e.final).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
    const target = this.keep - Math.floor(this.keep / 10);
    const extra = finished.slice(0, Math.max(0, finished.length - target));
    for (const e of extra) await this.#serial(e.id, () => rm(this.file(e.id), { force: true }));
    return extra.length;
  }

  /** The file of an id: the SHA-256 of its UTF-8 bytes, so the name is 69 characters whatever the id. */
  file(id: string): string {
    return join(this.dir, `${createHash('sha256').update(id, 'utf8').digest('hex')}.json`);
  }

  #serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(id, tail);
    void tail.then(() => {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    });
    return run;
  }

  async #write(entry: LedgerEntry): Promise<void> {
    await writeFileDurable(this.file(entry.id), `${JSON.stringify(entry, null, 1)}\n`);
  }

  async #all(): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    for (const n of await readdir(this.dir)) {
      if (!isEntryName(n)) continue;
      const path = join(this.dir, n);
      const e = await readEntry(path);
      if (e !== undefined) out.push(e);
      else await rm(path, { force: true });
    }
    return out;
  }

  /** Removes temporary files (written, never renamed: a crash) and moves entries named by the old scheme to their hash names. */
  async #tidy(): Promise<void> {
    for (const n of await readdir(this.dir)) {
      const path = join(this.dir, n);
      if (n.includes(TMP_TAG) || n.endsWith('.tmp')) {
        await rm(path, { force: true });
        continue;
      }
      if (!n.endsWith('.json')) continue;
      const e = await readEntry(path);
      if (e === undefined) continue; // dropped by the next #all()
      const want = this.file(e.id);
      if (want !== path) await rename(path, want);
    }
  }
}

/** An entry's file name (temporary files start with a dot or carry core's TMP_TAG). */
function isEntryName(n: string): boolean {
  return n.endsWith('.json') && !n.startsWith('.') && !n.includes(TMP_TAG);
}

async function readEntry(file: string): Promise<LedgerEntry | undefined> {
  let e: Partial<LedgerEntry>;
  try {
    e = JSON.parse(await readFile(file, 'utf8')) as Partial<LedgerEntry>;
  } catch {
    return undefined;
  }
  if (e === null || typeof e !== 'object' || typeof e.id !== 'string' || typeof e.command !== 'string' || typeof e.final !== 'boolean') return undefined;
  return e as LedgerEntry;
}
