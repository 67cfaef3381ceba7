import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ReadlineParser, SerialPort } from 'serialport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SerialSink } from '../src/serve/serial-sink.js';
import { tempDir } from './fixtures/serve/models.js';
import { waitFor } from './mqtt-brokers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let remove: () => Promise<void>;
const children: ChildProcess[] = [];
const ports: SerialPort[] = [];

beforeEach(async () => {
  ({ dir, remove } = await tempDir('kd-serial-'));
});
afterEach(async () => {
  for (const p of ports.splice(0)) if (p.isOpen) await new Promise((r) => p.close(r));
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await remove();
});

/** A pseudo-terminal pair from socat: `a` is the sink's end, `b` the reader's. */
async function startSocat(): Promise<{ a: string; b: string; stop: () => Promise<void> }> {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const child = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  children.push(child);
  await waitFor('socat links', () => existsSync(a) && existsSync(b));
  const stop = async (): Promise<void> => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    await waitFor('socat to remove its links', () => !existsSync(a) && !existsSync(b));
  };
  return { a, b, stop };
}

/** Opens the reader's end and collects whole lines. */
async function readLines(path: string): Promise<string[]> {
  const lines: string[] = [];
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  ports.push(port);
  port.on('error', () => {});
  port.pipe(new ReadlineParser({ delimiter: '\n' })).on('data', (l: string) => lines.push(l));
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  return lines;
}

describe('SerialSink', () => {
  it('writes NDJSON lines, survives the port vanishing, and resumes on the same path', async () => {
    const pty = await startSocat();
    const sink = new SerialSink({ path: pty.a, baudRate: 115200, retryInitialMs: 20, retryMaxMs: 100, maxPending: 8 });
    const events: string[] = [];
    sink.on('open', () => events.push('open'));
    sink.on('disconnect', () => events.push('disconnect'));
    let retries = 0;
    sink.on('retry', () => retries++);
    const lines = await readLines(pty.b);
    sink.start();
    await waitFor('open', () => sink.state === 'open');
    for (let i = 0; i < 3; i++) expect(sink.write({ seq: i, text: 'two\nlines' })).toBe(true);
    expect(sink.write('plain')).toBe(true);
    await waitFor('4 lines', () => lines.length >= 4);
    // Objects as JSON (their newlines escaped), strings as they are: one line each.
    expect(lines.slice(0, 3).map((l) => JSON.parse(l))).toEqual([0, 1, 2].map((seq) => ({ seq, text: 'two\nlines' })));
    expect(lines[3]).toBe('plain');

    // The port disappears; writing goes on without a throw.
    await pty.stop();
    for (let i = 10; i < 40; i++) {
      expect(sink.write({ seq: i })).toBe(true);
      await sleep(5);
    }
    await waitFor('disconnect', () => events.includes('disconnect'));
    await waitFor('a failed reopen', () => retries >= 2);
    expect(sink.state).not.toBe('open');
    expect(sink.stats.pending).toBeLessThanOrEqual(8);
    expect(sink.stats.dropped).toBeGreaterThan(0);

    // The same link names come back: the sink reopens by itself and the queued lines flow, then new ones.
    const again = await startSocat();
    const lines2 = await readLines(again.b);
    await waitFor('reopen', () => events.filter((e) => e === 'open').length === 2);
    sink.write({ seq: 100 });
    await waitFor('seq 100', () => lines2.some((l) => l === '{"seq":100}'));
    const seqs = lines2.map((l) => (JSON.parse(l) as { seq: number }).seq);
    // What was queued is the newest of the outage, in order, then the new line.
    expect(seqs[seqs.length - 1]).toBe(100);
    expect(seqs.slice(0, -1)).toEqual([...seqs.slice(0, -1)].sort((x, y) => x - y));
    expect(seqs.slice(0, -1).every((s) => s >= 10 && s < 40)).toBe(true);
    expect(events.slice(0, 2)).toEqual(['open', 'disconnect']);
    expect(sink.stats.opens).toBe(2);
    await sink.close();
    expect(sink.state).toBe('closed');
    expect(sink.write({ late: true })).toBe(false);
  });

  it('keeps retrying a missing port with a bounded queue and never throws', async () => {
    const sink = new SerialSink({ path: join(dir, 'no-such-tty'), retryInitialMs: 10, retryMaxMs: 40, maxPending: 5 });
    const delays: number[] = [];
    sink.on('retry', (r) => delays.push(r.delayMs));
    const dropped: string[] = [];
    sink.on('dropped', (d) => dropped.push(d.reason));
    sink.start();
    for (let i = 0; i < 12; i++) sink.write({ i });
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expect(sink.write(cyclic)).toBe(false);
    await waitFor('4 retries', () => delays.length >= 4);
    expect(delays.slice(0, 4)).toEqual([10, 20, 40, 40]);
    expect(sink.stats).toMatchObject({ written: 0, pending: 5, dropped: 8, opens: 0 });
    expect(dropped.filter((r) => r === 'overflow')).toHaveLength(7);
    expect(dropped).toContain('unserialisable');
    await sink.close();
    expect(sink.stats).toMatchObject({ pending: 0, dropped: 13 });
  });
});
