import type { TeacherOutput } from './types.js';

/** The teacher's outputs for images [start, start + n) of its batch (copies, safe to post to a worker). */
export function sliceTeacher(out: TeacherOutput, batchN: number, start: number, n: number): TeacherOutput {
  const cut = (data: Float32Array): Float32Array => {
    const per = data.length / batchN;
    return data.slice(start * per, (start + n) * per);
  };
  const sliced: TeacherOutput = { ms: out.ms };
  if (out.levels) sliced.levels = out.levels.map((l) => ({ data: cut(l.data), ny: l.ny, nx: l.nx }));
  if (out.logits) sliced.logits = cut(out.logits);
  if (out.features) {
    sliced.features = new Map([...out.features].map(([k, f]) => [k, { data: cut(f.data), shape: [n, f.shape[1], f.shape[2], f.shape[3]] }]));
  }
  return sliced;
}
