import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSpace, freeBytes } from '../src/transfer/disk-space.js';
import { TransferError } from '../src/transfer/transfer-error.js';

describe('disk space', () => {
  it('measures the file system of a path, or of its nearest existing parent', async () => {
    const free = await freeBytes(tmpdir());
    expect(free).toBeGreaterThan(0);
    const notYet = await freeBytes(join(tmpdir(), 'kd-not-there', 'a', 'b.tar'));
    // Same file system; other writers may move the figure a little between the two calls.
    expect(Math.abs(notYet - free)).toBeLessThan(free / 2);
  });

  it('passes when need plus reserve fit and throws TRANSFER_DISK_FULL naming need and free when not', async () => {
    const free = await freeBytes(tmpdir());
    await expect(checkSpace(tmpdir(), 1024, { reserveBytes: 1024 })).resolves.toBeGreaterThan(0);
    const err = await checkSpace(tmpdir(), free * 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransferError);
    expect((err as TransferError).code).toBe('TRANSFER_DISK_FULL');
    expect((err as TransferError).message).toMatch(new RegExp(`needs ${free * 2} bytes .* only \\d+ bytes .* are free`));
    await expect(checkSpace(tmpdir(), 0, { reserveBytes: free * 2 })).rejects.toThrow(/plus a reserve/);
    await expect(checkSpace(tmpdir(), -1)).rejects.toThrow(RangeError);
  });
});
