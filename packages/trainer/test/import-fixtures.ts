import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import * as tf from '../src/tf.js';
import type { DetectionModel } from '../src/model/types.js';

/** Real ultralytics checkpoints and exports with PyTorch's outputs beside them (fixtures/ultralytics/README.md). */
export const FIX = fileURLToPath(new URL('./fixtures/ultralytics/', import.meta.url));
const f32 = (name: string): Float32Array => {
  const b = readFileSync(join(FIX, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** Largest |ours − PyTorch| over the raw head outputs of the fixture's input (PyTorch: [1, na, ny, nx, no]). */
export async function rawHeadError(model: DetectionModel, stem: string, side: number): Promise<{ maxErr: number; maxRef: number }> {
  const x = tf.tidy(() => tf.tensor4d(f32(`${stem}.input.bin`), [1, 3, side, side]).transpose([0, 2, 3, 1]) as tf.Tensor4D);
  const outs = model.forward(x, false);
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < outs.length; i++) {
    const ours = await outs[i]!.data();
    const [, ny, nx, ch] = outs[i]!.shape;
    const na = model.na;
    const no = ch / na;
    const ref = f32(`${stem}.raw${i}.bin`);
    expect(ref.length).toBe(ours.length);
    for (let a = 0; a < na; a++) {
      for (let y = 0; y < ny; y++) {
        for (let xx = 0; xx < nx; xx++) {
          for (let k = 0; k < no; k++) {
            const r = ref[((a * ny + y) * nx + xx) * no + k]!;
            maxErr = Math.max(maxErr, Math.abs(r - ours[(y * nx + xx) * ch + a * no + k]!));
            maxRef = Math.max(maxRef, Math.abs(r));
          }
        }
      }
    }
  }
  tf.dispose([x, ...outs]);
  return { maxErr, maxRef };
}

