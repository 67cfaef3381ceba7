import { attrTensor, DataType, tensorToFloat32, type ModelProto, type TensorProto } from '@kd-edge/core';

function anchorsOf(t: TensorProto): number[] | undefined {
  // ultralytics' anchor_grid: (anchors·stride).view(1, na, 1, 1, 2).expand(1, na, ny, nx, 2), which a
  // static export folds into one constant; the xy grid has the same shape but varies over cells.
  const d = t.dims;
  if (t.dataType !== DataType.FLOAT || d.length !== 5 || d[0] !== 1 || d[4] !== 2 || !(d[1]! >= 1)) return undefined;
  let v: Float32Array;
  try {
    v = tensorToFloat32(t);
  } catch {
    return undefined;
  }
  const na = d[1]!;
  const cells = d[2]! * d[3]!;
  if (v.length !== na * cells * 2) return undefined;
  const out: number[] = [];
  for (let a = 0; a < na; a++) {
    const w = v[a * cells * 2]!;
    const h = v[a * cells * 2 + 1]!;
    if (!(w > 0 && h > 0)) return undefined;
    for (let c = 1; c < cells; c++) {
      if (v[(a * cells + c) * 2] !== w || v[(a * cells + c) * 2 + 1] !== h) return undefined;
    }
    out.push(w, h);
  }
  return out;
}

/**
 * The pixel anchors a YOLOv5 export multiplies `(2σ)²` by, read from the graph's constants
 * (initializers or Constant nodes shaped [1, na, ny|1, nx|1, 2], positive and equal over cells), in
 * the order the graph uses them. Recovers autoanchor-tuned anchors from ultralytics exports, whose
 * metadata holds none; undefined unless exactly `levels` such tensors are found.
 */
export function anchorsFromGraph(model: ModelProto, levels: number): number[][] | undefined {
  const graph = model.graph;
  if (graph === undefined) return undefined;
  const constants = new Map<string, TensorProto>();
  for (const t of graph.initializer) constants.set(t.name, t);
  for (const n of graph.node) {
    if (n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx') && n.output[0] !== undefined) {
      try {
        constants.set(n.output[0], attrTensor(n, 'value'));
      } catch {
        // A Constant given as value_float(s)/value_int(s) is never an anchor grid.
      }
    }
  }
  const found: number[][] = [];
  const seen = new Set<string>();
  for (const n of graph.node) {
    if (n.opType !== 'Mul' && n.opType !== 'Expand') continue;
    for (const name of n.input) {
      const t = constants.get(name);
      if (t === undefined || seen.has(name)) continue;
      const a = anchorsOf(t);
      if (a !== undefined) {
        seen.add(name);
        found.push(a);
      }
    }
  }
  return found.length === levels ? found : undefined;
}
