import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxDrop, type OutboxMessage } from '../src/mqtt/outbox.js';
import { decodeOutboxRecord, encodeOutboxRecord } from '../src/mqtt/outbox-record.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-outbox-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A sender that records payloads and acknowledges each one. */
function recorder(): { sent: string[]; send: (m: OutboxMessage) => Promise<'sent'> } {
  const sent: string[] = [];
  return {
    sent,
    send: async (m) => {
      sent.push(m.payload.toString());
      return 'sent';
    },
  };
}

async function appendAll(outbox: Outbox, payloads: string[], topic = 'kd/v1/lab/devices/d1/events'): Promise<Array<number | null>> {
  return Promise.all(payloads.map((p) => outbox.append(topic, Buffer.from(p), { qos: 1 })));
}

describe('outbox records', () => {
  it('round-trip topic, flags and bytes, and name what is wrong with damaged files', () => {
    const record = { topic: 'a/b', payload: Buffer.from([0, 1, 2, 255]), qos: 1 as const, retain: true, queuedAt: 1234 };
    const bytes = encodeOutboxRecord(record);
    expect(decodeOutboxRecord(bytes)).toEqual(record);
    expect(decodeOutboxRecord(bytes.subarray(0, bytes.length - 1))).toMatch(/payload is 3 bytes, header says 4/);
    expect(decodeOutboxRecord(bytes.subarray(0, 10))).toMatch(/truncated header/);
    expect(decodeOutboxRecord(Buffer.from('nope'))).toMatch(/magic/);
  });
});

describe('Outbox', () => {
  it('flushes in append order, with topic and flags, deleting each file after the send resolves', async () => {
    const outbox = await Outbox.open(dir, { fsync: false });
    expect(await appendAll(outbox, ['a', 'b', 'c'])).toEqual([1, 2, 3]);
    await outbox.append('kd/v1/lab/devices/d1/status', Buffer.from('s'), { qos: 1, retain: true });
    expect(outbox.size).toBe(4);
    expect(await readdir(dir)).toEqual(['0000000000000001.msg', '0000000000000002.msg', '0000000000000003.msg', '0000000000000004.msg']);

    const seen: OutboxMessage[] = [];
    let filesDuringSecond: string[] = [];
    const sent = await outbox.flush(async (m) => {
      if (m.seq === 2) filesDuringSecond = await readdir(dir);
      seen.push(m);
      return 'sent';
    });
    expect(sent).toBe(4);
    expect(seen.map((m) => [m.seq, m.payload.toString(), m.retain])).toEqual([
      [1, 'a', false],
      [2, 'b', false],
      [3, 'c', false],
      [4, 's', true],
    ]);
    expect(seen[3]!.topic).toBe('kd/v1/lab/devices/d1/status');
    // The message being sent is still on disk until its send resolves.
    expect(filesDuringSecond).toContain('0000000000000002.msg');
    expect(filesDuringSecond).not.toContain('0000000000000001.msg');
    expect(await readdir(dir)).toEqual([]);
    expect(outbox.size).toBe(0);
    expect(outbox.bytes).toBe(0);
  });

  it('stops at a failing send and keeps that message for the next flush', async () => {
    const outbox = await Outbox.open(dir, { fsync: false });
    await appendAll(outbox, ['a', 'b', 'c']);
    let calls = 0;
    const sent = await outbox.flush(async (m) => {
      calls += 1;
      if (m.payload.toString() === 'b') throw new Error('connection lost');
      return 'sent';
    });
    expect(sent).toBe(1);
    expect(calls).toBe(2);
    expect(outbox.size).toBe(2);
    const again = recorder();
    expect(await outbox.flush(again.send)).toBe(2);
    expect(again.sent).toEqual(['b', 'c']);
  });

  it('drops a message the broker refused and goes on with the next', async () => {
    const outbox = await Outbox.open(dir, { fsync: false });
    await appendAll(outbox, ['a', 'denied', 'c']);
    const drops: OutboxDrop[] = [];
    outbox.on('drop', (d) => drops.push(d));
    const sent: string[] = [];
    await outbox.flush(async (m) => {
      if (m.payload.toString() === 'denied') return 'rejected';
      sent.push(m.payload.toString());
      return 'sent';
    });
    expect(sent).toEqual(['a', 'c']);
    expect(drops.map((d) => [d.seq, d.reason])).toEqual([[2, 'rejected']]);
    expect(outbox.size).toBe(0);
  });

  it('keeps at most maxMessages, dropping the oldest first and reporting each drop', async () => {
    const outbox = await Outbox.open(dir, { maxMessages: 3, fsync: false });
    const drops: OutboxDrop[] = [];
    outbox.on('drop', (d) => drops.push(d));
    await appendAll(outbox, ['1', '2', '3', '4', '5']);
    expect(outbox.size).toBe(3);
    expect(outbox.dropped).toBe(2);
    expect(drops.map((d) => [d.seq, d.reason, d.topic])).toEqual([
      [1, 'overflow', 'kd/v1/lab/devices/d1/events'],
      [2, 'overflow', 'kd/v1/lab/devices/d1/events'],
    ]);
    const r = recorder();
    await outbox.flush(r.send);
    expect(r.sent).toEqual(['3', '4', '5']);
  });

  it('keeps at most maxBytes on disk and refuses a message larger than the whole budget', async () => {
    const one = encodeOutboxRecord({ topic: 't/x', payload: Buffer.alloc(100), qos: 1, retain: false, queuedAt: Date.now() }).length;
    const outbox = await Outbox.open(dir, { maxBytes: one * 2 + 10, fsync: false });
    const drops: OutboxDrop[] = [];
    outbox.on('drop', (d) => drops.push(d));
    for (let i = 0; i < 4; i++) await outbox.append('t/x', Buffer.alloc(100, i));
    expect(outbox.size).toBe(2);
    expect(outbox.bytes).toBeLessThanOrEqual(one * 2 + 10);
    expect(drops.map((d) => [d.seq, d.reason])).toEqual([
      [1, 'overflow'],
      [2, 'overflow'],
    ]);
    expect(await outbox.append('t/x', Buffer.alloc(one * 3))).toBeNull();
    expect(drops.at(-1)?.reason).toBe('too-large');
    expect(outbox.size).toBe(2);
  });

  it('never deletes the message a flush is sending to make room', async () => {
    const outbox = await Outbox.open(dir, { maxMessages: 2, fsync: false });
    await appendAll(outbox, ['a', 'b']);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sent: string[] = [];
    const flushing = outbox.flush(async (m) => {
      if (m.seq === 1) await gate;
      sent.push(m.payload.toString());
      return 'sent';
    });
    await delay(10);
    await outbox.append('t/x', Buffer.from('c'));
    release();
    await flushing;
    // 'b' made room for 'c'; 'a' (in flight) was delivered.
    expect(sent).toEqual(['a', 'c']);
    expect(outbox.dropped).toBe(1);
  });

  it('survives a restart: a new Outbox on the folder keeps the order and continues the sequence', async () => {
    const first = await Outbox.open(dir);
    await appendAll(first, ['a', 'b', 'c']);
    await first.close();
    await expect(first.append('t/x', Buffer.from('late'))).rejects.toMatchObject({ code: 'MQTT_OUTBOX_CLOSED' });
    // What a kill during a write leaves: a temporary file that never got its final name.
    await writeFile(join(dir, '0000000000000004.msg.tmp'), Buffer.from('KDO1\0\0'));

    const second = await Outbox.open(dir);
    expect(second.size).toBe(3);
    expect(await second.append('kd/v1/lab/devices/d1/events', Buffer.from('d'))).toBe(4);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const r = recorder();
    await second.flush(r.send);
    expect(r.sent).toEqual(['a', 'b', 'c', 'd']);
  });

  it('drops a damaged file with reason corrupt instead of sending garbage', async () => {
    const outbox = await Outbox.open(dir, { fsync: false });
    await appendAll(outbox, ['a', 'b']);
    await writeFile(join(dir, '0000000000000001.msg'), Buffer.from('KDO1 garbage'));
    const drops: OutboxDrop[] = [];
    outbox.on('drop', (d) => drops.push(d));
    const r = recorder();
    await outbox.flush(r.send);
    expect(r.sent).toEqual(['b']);
    expect(drops.map((d) => [d.seq, d.reason])).toEqual([[1, 'corrupt']]);
  });

  it('leaves only whole messages when the writing process is SIGKILLed mid-stream', async () => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./mqtt-outbox-writer.ts', import.meta.url)), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Wait until the writer has appended some messages, then kill it without warning.
    await new Promise<void>((ok, fail) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('50')) ok();
      });
      child.once('exit', (code) => fail(new Error(`writer exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const outbox = await Outbox.open(dir);
    const drops: OutboxDrop[] = [];
    outbox.on('drop', (d) => drops.push(d));
    const seqs: number[] = [];
    await outbox.flush(async (m) => {
      seqs.push(m.seq);
      expect(m.payload.toString()).toBe(`message ${m.seq} `.repeat(200));
      return 'sent';
    });
    expect(drops).toEqual([]);
    expect(seqs.length).toBeGreaterThanOrEqual(50);
    // Contiguous from 1: no message vanished or came out half-written.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  }, 30_000);
});
