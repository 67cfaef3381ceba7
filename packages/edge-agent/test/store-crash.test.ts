import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, seededRandom, verifyPackage } from '@kd-edge/core';
import { ModelStore } from '../src/store/model-store.js';
import { makeTestPackage, type TestPackage } from './store-helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/store-churn.ts', import.meta.url));
const KILLS = Number(process.env.KD_STORE_KILLS ?? 30);
// Children load (tsx + core) ahead of their turn, so each kill costs its delay, not a start-up.
const WARM = 3;
const MAX_DELAY_MS = 250;

interface Child {
  proc: ChildProcess;
  lines: string[];
  loaded: Promise<void>;
  /** Resolves when the child has opened (and so recovered) the store, or exited. */
  ready: Promise<void>;
  exited: Promise<number | null>;
}

function spawnChild(root: string, packagesJson: string, start: number, iterations: number): Child {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FIXTURE, root, packagesJson, String(start), String(iterations)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  let stderr = '';
  let onLoaded: () => void = () => {};
  const loaded = new Promise<void>((res) => (onLoaded = res));
  let onReady: () => void = () => {};
  const ready = new Promise<void>((res) => (onReady = res));
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const line of parts) {
      if (line === 'loaded') onLoaded();
      else lines.push(line);
      if (line === 'ready') onReady();
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) =>
    proc.on('exit', (code) => {
      if (code !== null && code !== 0) lines.push(`stderr ${stderr}`);
      onLoaded();
      onReady();
      res(code);
    }),
  );
  return { proc, lines, loaded, ready, exited };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('model store under SIGKILL', () => {
  let work: string;
  let root: string;
  let packagesJson: string;
  let packages: TestPackage[];
  const keys = generateKeyPair();
  const spawned: Child[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kd-store-crash-'));
    root = join(work, 'store');
    packages = [];
    for (const v of ['1.0.0', '1.1.0', '2.0.0-rc.1']) packages.push(await makeTestPackage(join(work, 'src'), 'pets', v, keys.privateKeyPem));
    packagesJson = join(work, 'packages.json');
    await writeFile(packagesJson, JSON.stringify(packages.map((p) => ({ dir: p.dir, info: p.info }))));
  });

  afterAll(async () => {
    for (const c of spawned) c.proc.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  /** What a restarted agent relies on, checked on the raw files before recovery touches anything, then after. */
  async function checkStore(allowed: ReadonlySet<string | null>): Promise<string | null> {
    const versions = join(root, 'versions');
    let raw: { current: string | null; previous: string | null } = { current: null, previous: null };
    const text = await readFile(join(root, 'state.json'), 'utf8').catch(() => undefined);
    if (text !== undefined) raw = JSON.parse(text) as typeof raw;
    for (const key of [raw.current, raw.previous]) {
      if (key === null) continue;
      // The pointer on disk never names a version without its marker, even before recovery.
      await access(join(versions, `${key}.complete`));
      const verified = await verifyPackage(join(versions, key), { trustedKeys: [keys.publicKeyPem] });
      expect(key.startsWith(`${verified.manifest.name}@${verified.manifest.version}-`)).toBe(true);
    }
    expect(allowed.has(raw.current)).toBe(true);

    const store = await ModelStore.open(root);
    const report = await store.recover();
    expect(report.repairs).toEqual([]);
    expect(store.current()?.key ?? null).toBe(raw.current);
    expect(store.previous()?.key ?? null).toBe(raw.previous);
    expect(await readdir(join(root, 'staging'))).toEqual([]);
    const names = await readdir(versions);
    for (const name of names) {
      expect(name.startsWith('.')).toBe(false);
      if (name.endsWith('.complete')) expect(names).toContain(name.slice(0, -'.complete'.length));
      else expect(names).toContain(`${name}.complete`);
    }
    return raw.current;
  }

  it('keeps state.json pointing at complete, verifiable versions through ~30 random kills', async () => {
    const rand = seededRandom(20260501);
    const queue: Child[] = [];
    const next = (i: number): Child => {
      const c = spawnChild(root, packagesJson, i * 7, 1_000_000);
      spawned.push(c);
      return c;
    };
    for (let i = 0; i < WARM; i++) queue.push(next(i));

    let active: string | null = null;
    for (let k = 0; k < KILLS; k++) {
      const child = queue.shift()!;
      queue.push(next(k + WARM));
      await child.loaded;
      child.proc.stdin!.write('go\n');
      // Half the kills count from the start (some land inside open/recover), half from the
      // moment the store is open (so they land in install/activate/gc even on a slow machine).
      if (k % 2 === 1) await child.ready;
      await sleep(rand() * MAX_DELAY_MS);
      child.proc.kill('SIGKILL');
      expect(await child.exited).toBe(null);

      // The pointer must be the last one the child finished writing, or the one it was writing.
      const allowed = new Set<string | null>([active]);
      for (const line of child.lines) {
        const [word, key] = line.split(' ');
        if (word === 'activating') allowed.add(key);
        if (word === 'activated') {
          allowed.clear();
          allowed.add(key);
        }
      }
      active = await checkStore(allowed);
    }
    for (const c of queue) c.proc.kill('SIGKILL');

    // And the store still works: an unkilled child runs three rounds to the end.
    const last = spawnChild(root, packagesJson, 0, 3);
    spawned.push(last);
    await last.loaded;
    last.proc.stdin!.write('go\n');
    expect(await last.exited).toBe(0);
    const activated = last.lines.filter((l) => l.startsWith('activated ')).map((l) => l.slice('activated '.length));
    expect(await checkStore(new Set([activated.at(-1)!]))).toBe(activated.at(-1));
  }, 180_000);
});
