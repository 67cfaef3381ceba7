import { stat } from 'node:fs/promises';
import { expect } from 'vitest';
import { TransferError } from '../src/transfer/transfer-error.js';

/** The TransferError `p` rejects with; fails the test when it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<TransferError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransferError);
  return err as TransferError;
}

/** Whether a path exists. */
export const exists = (p: string): Promise<boolean> => stat(p).then(
  () => true,
  () => false,
);
