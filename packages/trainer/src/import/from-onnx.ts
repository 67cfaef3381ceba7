import {
  planYolo, readOnnxFile, tensorToFloat32, YOLO_SCALES, yoloDescription, DEFAULT_ANCHORS,
  type ConvPlan, type LayerPlan, type ModelProto, type TensorProto, type YoloDescription, type YoloScale,
} from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import type { StoredTensor } from '../model/weights-io.js';
import { anchorsFromGraph } from './graph-anchors.js';
import { oihwToHwio, type SourceWeights } from './source-weights.js';
import { withTorchOnlyItems } from './torch-only-items.js';

/** BatchNorm epsilon of YOLOv5: a folded BatchNorm is rebuilt as the identity with var = 1 − ε. */
const BN_EPS = 1e-3;

/** The convolutions of a plan in forward order: what a traced export (torch.onnx) emits, in that order. */
function forwardConvs(layers: LayerPlan[]): { prefix: string; k: number; c1: number; c2: number; detect: boolean }[] {
  const out: { prefix: string; k: number; c1: number; c2: number; detect: boolean }[] = [];
  const conv = (c: ConvPlan): void => { out.push({ prefix: c.prefix, k: c.k, c1: c.c1, c2: c.c2, detect: false }); };
  for (const l of layers) {
    if (l.type === 'Conv') conv(l.conv);
    else if (l.type === 'C3') {
      conv(l.cv1);
      for (const b of l.m) { conv(b.cv1); conv(b.cv2); }
      conv(l.cv2);
      conv(l.cv3);
    } else if (l.type === 'SPPF') { conv(l.cv1); conv(l.cv2); }
    else if (l.type === 'Detect') for (const lv of l.levels) out.push({ prefix: lv.prefix, k: 1, c1: lv.c1, c2: l.c2, detect: true });
  }
  return out;
}

interface GraphConv { weight: TensorProto; bias: TensorProto | undefined }

function graphConvs(model: ModelProto): GraphConv[] {
  const inits = new Map((model.graph?.initializer ?? []).map((t) => [t.name, t]));
  const out: GraphConv[] = [];
  for (const n of model.graph?.node ?? []) {
    if (n.opType !== 'Conv') continue;
    const w = inits.get(n.input[1] ?? '');
    if (w === undefined) continue;
    out.push({ weight: w, bias: n.input[2] ? inits.get(n.input[2]) : undefined });
  }
  return out;
}

function metadata(model: ModelProto): Map<string, string> {
  return new Map((model.metadataProps ?? []).map((e) => [e.key, e.value]));
}

/** Class names from ultralytics' `names` metadata (a Python dict repr) or a JSON list. */
export function namesFromMetadata(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  try {
    const v = JSON.parse(value) as unknown;
    if (Array.isArray(v)) return v.map(String);
  } catch {
    // a Python dict repr: {0: 'person', 1: 'bicycle'}
  }
  const found = [...value.matchAll(/(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")/g)].map((m) => [Number(m[1]), m[2] ?? m[3] ?? ''] as const);
  if (found.length === 0) return undefined;
  return found.sort((a, b) => a[0] - b[0]).map(([, n]) => n);
}

/**
 * A YOLOv5 ONNX export (ultralytics' export.py or kd-trainer's) as {@link SourceWeights}. Exports fold each
 * BatchNorm into its convolution, so the BatchNorms come back as the identity (γ = 1, β = the folded bias,
 * mean 0, var 1 − ε): the network computes what the export computes, and fine-tuning re-learns the
 * statistics. The architecture (a standard YOLOv5 n/s/m/l/x, P3–P5) is recognised from the weight shapes;
 * the anchors come from the graph's anchor grid or the `anchors` metadata, the names from the metadata.
 */
export async function onnxSource(file: string): Promise<SourceWeights> {
  let model: ModelProto;
  try {
    model = await readOnnxFile(file);
  } catch (err) {
    throw new WeightsError(`${file}: not a readable ONNX model (${(err as Error).message})`, { cause: err });
  }
  const convs = graphConvs(model);
  const last = convs.at(-1);
  if (last === undefined || last.bias === undefined) throw new WeightsError(`${file}: no convolutions with weights found; not a YOLOv5 export`);
  const meta = metadata(model);
  let anchors: number[][] | undefined = anchorsFromGraph(model, 3);
  if (anchors === undefined && meta.has('anchors')) {
    try {
      anchors = JSON.parse(meta.get('anchors')!) as number[][];
    } catch {
      anchors = undefined;
    }
  }
  const notes: string[] = [];
  if (anchors === undefined) {
    anchors = DEFAULT_ANCHORS.map((a) => [...a]);
    notes.push(`${file}: no anchors in the graph or metadata; using YOLOv5's defaults`);
  }
  const na = anchors[0]!.length / 2;
  const nc = last.weight.dims[0]! / na - 5;
  if (!Number.isInteger(nc) || nc < 1) throw new WeightsError(`${file}: the last convolution has ${last.weight.dims[0]} outputs, not ${na}·(5+nc)`);

  const fits = (desc: YoloDescription): boolean => {
    const plan = forwardConvs(planYolo(desc).layers);
    return plan.length === convs.length && plan.every((c, i) => {
      const d = convs[i]!.weight.dims;
      return d[0] === c.c2 && d[1] === c.c1 && d[2] === c.k && d[3] === c.k;
    });
  };
  const scale = (Object.keys(YOLO_SCALES) as YoloScale[]).find((s) => fits(yoloDescription(s, nc, anchors)));
  if (scale === undefined) {
    throw new WeightsError(`${file}: its convolutions match no standard YOLOv5 (n, s, m, l, x with P3–P5 heads); export a .kdw or .pt of a custom model instead`);
  }
  const description = yoloDescription(scale, nc, anchors);
  const names = namesFromMetadata(meta.get('names'));
  if (names?.length === nc) description.names = names;

  const tensors = new Map<string, StoredTensor>();
  const plan = forwardConvs(planYolo(description).layers);
  plan.forEach((c, i) => {
    const g = convs[i]!;
    const w = oihwToHwio({ shape: g.weight.dims.map(Number), data: tensorToFloat32(g.weight) });
    const bias = g.bias ? tensorToFloat32(g.bias) : new Float32Array(c.c2);
    if (c.detect) {
      tensors.set(`${c.prefix}.weight`, w);
      tensors.set(`${c.prefix}.bias`, { shape: [c.c2], data: bias });
      return;
    }
    tensors.set(`${c.prefix}.conv.weight`, w);
    tensors.set(`${c.prefix}.bn.weight`, { shape: [c.c2], data: new Float32Array(c.c2).fill(1) });
    tensors.set(`${c.prefix}.bn.bias`, { shape: [c.c2], data: bias });
    tensors.set(`${c.prefix}.bn.running_mean`, { shape: [c.c2], data: new Float32Array(c.c2) });
    tensors.set(`${c.prefix}.bn.running_var`, { shape: [c.c2], data: new Float32Array(c.c2).fill(1 - BN_EPS) });
  });
  const folded = plan.filter((c) => !c.detect).length;
  notes.push(`${file}: BatchNorm was folded into ${folded} convolutions by the export; they start as identity BatchNorms (γ=1, β=bias, mean 0, var 1−ε) and fine-tuning re-learns their statistics (a .pt checkpoint keeps them)`);
  return { file, description, tensors: withTorchOnlyItems(tensors, description), notes };
}
