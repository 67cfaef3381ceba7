import type { YoloDescription } from '@kd-edge/core';
import type { StoredTensor } from '../model/weights-io.js';

/**
 * Weights read from any source (`.kdw`, ultralytics `.pt`, ONNX), before they meet a model: tensors by
 * ultralytics state_dict name in kd-edge's layout (convolutions [kh, kw, cin, cout]), and the description
 * of the network they came from (its own class count and anchors).
 */
export interface SourceWeights {
  file: string;
  description: YoloDescription;
  tensors: Map<string, StoredTensor>;
  /** What the reader wants the user to know (BatchNorm folded, which checkpoint entry…). */
  notes: string[];
}

/** [cout, cin, kh, kw] (PyTorch, ONNX) → [kh, kw, cin, cout] (TensorFlow.js). */
export function oihwToHwio(t: StoredTensor): StoredTensor {
  const [cout, cin, kh, kw] = t.shape as [number, number, number, number];
  const out = new Float32Array(t.data.length);
  const src = t.data;
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * cin + i) * cout + o] = src[((o * cin + i) * kh + y) * kw + x]!;
      }
    }
  }
  return { shape: [kh, kw, cin, cout], data: out };
}
