import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson, writeJsonAtomic } from '../util/atomic-json.js';

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

const FINAL_STATES = new Set(['succeeded', 'failed', 'rolled_back']);

/** True for the events that end a command. */
export function isFinalState(state: string): boolean {
  return FINAL_STATES.has(state);
}

/**
 * Commands by id on disk, so a command is done once however often it arrives (a QoS 1 redelivery, a
 * fleet retry, a restart): a repeat of a finished one is answered with its final event, and one cut
 * short by a crash is resumed. Files are written atomically; the oldest finished ones are pruned.
 */
export class CommandLedger {
  private constructor(private readonly dir: string, private readonly keep: number) {}

  /** Opens (creates) the ledger folder. */
  static async open(dir: string, keep = 500): Promise<CommandLedger> {
    await mkdir(dir, { recursive: true });
    return new CommandLedger(dir, keep);
  }

  /** The entry of a command id, if seen. */
  async get(id: string): Promise<LedgerEntry | undefined> {
    return readJson<LedgerEntry>(this.file(id));
  }

  /** Records a newly accepted command. */
  async begin(id: string, command: string, message: unknown): Promise<LedgerEntry> {
    const entry: LedgerEntry = { id, command, message, receivedAt: new Date().toISOString(), final: false };
    await writeJsonAtomic(this.file(id), entry);
    return entry;
  }

  /** Records the latest event of a command (final ones close it). */
  async record(id: string, event: Record<string, unknown>): Promise<void> {
    const entry = await this.get(id);
    if (entry === undefined) return;
    entry.last = event;
    entry.final = typeof event.state === 'string' && isFinalState(event.state);
    await writeJsonAtomic(this.file(id), entry);
  }

  /** Commands received but not finished (the agent was stopped or killed during them), oldest first. */
  async unfinished(): Promise<LedgerEntry[]> {
    const entries = await this.all();
    return entries.filter((e) => !e.final).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  /** Deletes the oldest finished entries beyond the kept count. */
  async prune(): Promise<number> {
    const finished = (await this.all()).filter((e) => e.final).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
    const extra = finished.slice(0, Math.max(0, finished.length - this.keep));
    for (const e of extra) await unlink(this.file(e.id)).catch(() => undefined);
    return extra.length;
  }

  private async all(): Promise<LedgerEntry[]> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.json'));
    const out: LedgerEntry[] = [];
    for (const n of names) {
      const e = await readJson<LedgerEntry>(join(this.dir, n));
      if (e !== undefined) out.push(e);
      else await stat(join(this.dir, n)).then(() => unlink(join(this.dir, n))).catch(() => undefined);
    }
    return out;
  }

  private file(id: string): string {
    // Ids are free text (1..128 chars): hex keeps any of them a safe file name.
    return join(this.dir, `${Buffer.from(id, 'utf8').toString('hex').slice(0, 240)}.json`);
  }
}
