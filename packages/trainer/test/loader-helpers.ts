import type { DataLoader } from '../src/data/loader.js';
import type { Batch } from '../src/data/types.js';

/** Every batch of epoch `epoch`, in order. */
export async function collect(l: DataLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of l.epoch(epoch)) out.push(b);
  return out;
}
