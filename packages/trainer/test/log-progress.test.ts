import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressBar, formatDuration } from '../src/log/progress.js';

/** A Writable that records what was written, with isTTY/columns set like a terminal or a pipe. */
function fakeStream(isTTY: boolean, columns = 100): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { isTTY: boolean; columns: number; text: () => string };
  s.isTTY = isTTY;
  s.columns = columns;
  s.text = () => chunks.join('');
  return s;
}

// ANSI "erase to end of line", written after each TTY redraw.
const CLEAR = '\x1b[K';

function run(stream: ReturnType<typeof fakeStream>, steps: number, epoch = 2): void {
  let t = 0;
  const bar = new ProgressBar({ epoch, epochs: 10, steps, stream, now: () => t, redrawMs: 0 });
  for (let i = 1; i <= steps; i++) {
    t += 500;
    bar.update(i, { box: 0.051234, obj: 0.02, cls: 0.01 }, i * 16);
  }
  bar.finish('val mAP50 0.412');
}

describe('ProgressBar', () => {
  it('redraws a single width-limited line on a TTY', () => {
    const stream = fakeStream(true, 100);
    run(stream, 50);
    const out = stream.text();
    expect(out.split('\n')).toEqual([expect.any(String), '']);
    const frames = out.trimEnd().split('\r').filter(Boolean).map((f) => f.replace(CLEAR, ''));
    expect(frames).toHaveLength(51);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(99);
    expect(frames[0]).toMatch(/^ 3\/10 {3}2% \|█?░+\| {2} 1\/50 {2}box 0\.0512 obj 0\.0200 cls 0\.0100 {2}32\.0 img\/s {2}0:01<0:25$/);
    expect(frames[49]).toMatch(/^ 3\/10 100% \|█+\| {2}50\/50 .* 0:25<0:00$/);
    expect(frames[50]).toContain('val mAP50 0.412');
  });

  it('drops the bar, then truncates, on a narrow terminal', () => {
    const stream = fakeStream(true, 40);
    run(stream, 5);
    const frames = stream.text().trimEnd().split('\r').filter(Boolean).map((f) => f.replace(CLEAR, ''));
    for (const f of frames.slice(0, -1)) {
      expect(f.length).toBeLessThanOrEqual(39);
      expect(f).not.toContain('█');
    }
  });

  it('throttles TTY redraws but always draws the last step', () => {
    const stream = fakeStream(true);
    let t = 0;
    const bar = new ProgressBar({ epoch: 0, epochs: 1, steps: 100, stream, now: () => t, redrawMs: 1000 });
    for (let i = 1; i <= 100; i++) {
      t += 10;
      bar.update(i, { loss: 1 });
    }
    expect(stream.text().split('\r').filter(Boolean)).toHaveLength(2);
    expect(stream.text()).toContain('100/100');
  });

  it('prints at most ten plain lines per epoch when not a TTY', () => {
    for (const steps of [3, 10, 37, 1000]) {
      const stream = fakeStream(false);
      run(stream, steps);
      const lines = stream.text().split('\n');
      expect(lines.pop()).toBe('');
      expect(stream.text()).not.toContain('\r');
      expect(stream.text()).not.toContain('\x1b');
      expect(lines.length).toBe(Math.min(steps, 10));
      expect(lines.at(-1)).toMatch(new RegExp(`^ 3/10 100%  ${steps}/${steps} .*val mAP50 0\\.412$`));
      for (const l of lines) expect(l).toMatch(/^ 3\/10 +\d+%  +\d+\/\d+  box /);
    }
  });

  it('validates its options and formats durations', () => {
    expect(() => new ProgressBar({ epoch: 3, epochs: 3, steps: 1, stream: fakeStream(false) })).toThrow(RangeError);
    expect(() => new ProgressBar({ epoch: 0, epochs: 3, steps: 0, stream: fakeStream(false) })).toThrow(/steps/);
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(61_000)).toBe('1:01');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
  });
});
