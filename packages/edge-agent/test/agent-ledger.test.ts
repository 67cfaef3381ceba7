import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandLedger } from '../src/commands/command-ledger.js';

const root = mkdtempSync(join(tmpdir(), 'kd-ledger-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('CommandLedger', () => {
  it('remembers commands across reopen, tells unfinished from final, and keeps odd ids as safe file names', async () => {
    const dir = join(root, 'a');
    const ledger = await CommandLedger.open(dir);
    await ledger.admit('c-1', 'deploy', { id: 'c-1' });
    await ledger.admit('../../etc/passwd', 'ping', { id: 'x' });
    await ledger.record('c-1', { state: 'downloading' });
    await ledger.record('../../etc/passwd', { state: 'succeeded' });
    const again = await CommandLedger.open(dir);
    expect((await again.get('c-1'))).toMatchObject({ command: 'deploy', final: false, last: { state: 'downloading' } });
    expect((await again.unfinished()).map((e) => e.id)).toEqual(['c-1']);
    await again.record('c-1', { state: 'failed', code: 'X' });
    expect(await again.unfinished()).toEqual([]);
    expect(readdirSync(dir).every((n) => /^[0-9a-f]{64}\.json$/.test(n))).toBe(true);
    expect(await again.get('never')).toBeUndefined();
  });

  it('prunes the oldest finished entries and drops unreadable files', async () => {
    const dir = join(root, 'b');
    const ledger = await CommandLedger.open(dir, 2);
    for (const id of ['a', 'b', 'c', 'd']) {
      await ledger.admit(id, 'ping', {});
      await ledger.record(id, { state: 'succeeded' });
      await new Promise((r) => setTimeout(r, 2));
    }
    await ledger.admit('open', 'deploy', {});
    writeFileSync(join(dir, 'junk.json'), '{');
    expect(await ledger.prune()).toBe(2);
    expect(await ledger.get('a')).toBeUndefined();
    expect(await ledger.get('d')).toBeDefined();
    expect(await ledger.get('open')).toBeDefined();
    expect(readdirSync(dir)).not.toContain('junk.json');
  });

  it('prunes only past the limit, then down to a tenth below it, oldest finished first', async () => {
    const dir = join(root, 'b2');
    const ledger = await CommandLedger.open(dir, 20);
    const finish = async (id: string): Promise<void> => {
      await ledger.admit(id, 'ping', {});
      await ledger.record(id, { state: 'succeeded' });
      await new Promise((r) => setTimeout(r, 2));
    };
    for (let i = 0; i < 20; i++) await finish(`c${i}`);
    expect(await ledger.prune()).toBe(0);
    await finish('c20');
    expect(await ledger.prune()).toBe(3);
    expect(await ledger.get('c2')).toBeUndefined();
    expect(await ledger.get('c3')).toBeDefined();
    expect(readdirSync(dir)).toHaveLength(18);
    await finish('c21');
    expect(await ledger.prune()).toBe(0);
  });

  it('admits one of N copies of an id fired at once, however they interleave', async () => {
    const ledger = await CommandLedger.open(join(root, 'c'));
    for (let round = 0; round < 5; round++) {
      const id = `dup-${round}`;
      const results = await Promise.all(Array.from({ length: 20 }, () => ledger.admit(id, 'rollback', { id })));
      expect(results.filter((r) => r.fresh)).toHaveLength(1);
      expect(new Set(results.map((r) => r.entry.receivedAt)).size).toBe(1);
    }
    expect(readdirSync(join(root, 'c')).filter((n) => !n.endsWith('.json'))).toEqual([]);
  });

  it('keeps a final outcome when a progress event sent without waiting lands after it', async () => {
    const ledger = await CommandLedger.open(join(root, 'd'));
    await ledger.admit('dl', 'deploy', {});
    await Promise.all([ledger.record('dl', { state: 'downloading' }), ledger.record('dl', { state: 'succeeded' }), ledger.record('dl', { state: 'downloading' })]);
    expect(await ledger.get('dl')).toMatchObject({ final: true, last: { state: 'succeeded' } });
    expect(await ledger.unfinished()).toEqual([]);
  });

  it('stores ids of the protocol\'s full 128 characters (any of them) under names within file-system limits', async () => {
    const dir = join(root, 'e');
    const ledger = await CommandLedger.open(dir);
    const long = `A${'x'.repeat(115)}`;
    const longest = `z${':'.repeat(126)}Z`;
    for (const id of [long, longest]) {
      expect((await ledger.admit(id, 'ping', { id })).fresh).toBe(true);
      await ledger.record(id, { state: 'succeeded' });
      expect(await ledger.get(id)).toMatchObject({ id, final: true });
    }
    expect(longest).toHaveLength(128);
    expect(readdirSync(dir).map((n) => n.length)).toEqual([69, 69]);
  });

  it('removes temporary files a crash left, and renames entries of the older id-in-hex naming', async () => {
    const dir = join(root, 'f');
    await mkdir(dir);
    writeFileSync(join(dir, `${Buffer.from('old-1').toString('hex')}.json`), JSON.stringify({ id: 'old-1', command: 'deploy', message: {}, receivedAt: '2026-01-01T00:00:00.000Z', final: false }));
    writeFileSync(join(dir, 'abc.json.4242.mkq1.tmp'), '');
    writeFileSync(join(dir, '.abc.json.tmp-0123456789ab'), '{"id":');
    const ledger = await CommandLedger.open(dir);
    expect(readdirSync(dir)).toEqual([ledger.file('old-1').slice(dir.length + 1)]);
    expect((await ledger.admit('old-1', 'deploy', {})).fresh).toBe(false);
    expect((await ledger.unfinished()).map((e) => e.id)).toEqual(['old-1']);
  });
});
