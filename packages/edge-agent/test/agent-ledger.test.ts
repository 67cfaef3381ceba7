import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
    await ledger.begin('c-1', 'deploy', { id: 'c-1' });
    await ledger.begin('../../etc/passwd', 'ping', { id: 'x' });
    await ledger.record('c-1', { state: 'downloading' });
    await ledger.record('../../etc/passwd', { state: 'succeeded' });
    const again = await CommandLedger.open(dir);
    expect((await again.get('c-1'))).toMatchObject({ command: 'deploy', final: false, last: { state: 'downloading' } });
    expect((await again.unfinished()).map((e) => e.id)).toEqual(['c-1']);
    await again.record('c-1', { state: 'failed', code: 'X' });
    expect(await again.unfinished()).toEqual([]);
    expect(readdirSync(dir).every((n) => /^[0-9a-f]+\.json$/.test(n))).toBe(true);
    expect(await again.get('never')).toBeUndefined();
  });

  it('prunes the oldest finished entries and drops unreadable files', async () => {
    const dir = join(root, 'b');
    const ledger = await CommandLedger.open(dir, 2);
    for (const id of ['a', 'b', 'c', 'd']) {
      await ledger.begin(id, 'ping', {});
      await ledger.record(id, { state: 'succeeded' });
      await new Promise((r) => setTimeout(r, 2));
    }
    await ledger.begin('open', 'deploy', {});
    writeFileSync(join(dir, 'junk.json'), '{');
    expect(await ledger.prune()).toBe(2);
    expect(await ledger.get('a')).toBeUndefined();
    expect(await ledger.get('d')).toBeDefined();
    expect(await ledger.get('open')).toBeDefined();
    expect(readdirSync(dir)).not.toContain('junk.json');
  });
});
