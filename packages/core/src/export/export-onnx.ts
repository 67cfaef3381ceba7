import type { ClassifierDescription, ModelDescription, ModelWeights, YoloDescription } from '../model/description.js';
import { planClassifier } from '../model/classifier-description.js';
import { planYolo } from '../model/yolo-description.js';
import type { LayerPlan } from '../model/plan.js';
import { irVersionForOpset } from '../onnx/graph-utils.js';
import type { ModelProto, StringStringEntry } from '../onnx/types.js';
import { emitDetect } from './emit-detect.js';
import { emitConv, emitLayer } from './emit-layers.js';
import { takeWeight } from './fold-bn.js';
import { GraphBuilder, int, type IoSpec } from './graph-builder.js';
import { pyNamesDict } from './python-repr.js';
import type { OutputLayout } from '../package/manifest.js';

/** Opsets the exporter writes (the graph is the same; 17 is what ultralytics' export defaults to). */
export const EXPORT_OPSETS = [13, 17] as const;

/** An opset the exporter writes. */
export type ExportOpset = (typeof EXPORT_OPSETS)[number];

/** Options of {@link exportOnnx}. */
export interface OnnxExportOptions {
  /** Input size, one side or [height, width]; multiples of the model's largest stride. */
  imgsz: number | [number, number];
  /** 13 (default) or 17. */
  opset?: ExportOpset;
  /** Static batch size (default 1); ignored when the batch is dynamic. */
  batch?: number;
  /** true: batch, height and width dynamic (ultralytics `--dynamic`); 'batch': only the batch. */
  dynamic?: boolean | 'batch';
  /** Export the raw per-level head tensors instead of the decoded `output0`. */
  raw?: boolean;
  /** Class names for the metadata (default: the description's, else class0…). */
  names?: string[];
  /** Written to producer_version. */
  producerVersion?: string;
  /** Extra metadata_props entries. */
  metadata?: Record<string, string>;
}


function sides(imgsz: number | [number, number], multiple: number): [number, number] {
  const [h, w] = typeof imgsz === 'number' ? [imgsz, imgsz] : imgsz;
  for (const [k, v] of [['height', h], ['width', w]] as const) {
    if (!Number.isInteger(v) || v < multiple || v % multiple !== 0) {
      throw new RangeError(`imgsz: ${k} ${String(v)} is not a positive multiple of the model's stride ${multiple}`);
    }
  }
  return [h, w];
}

function emitBody(g: GraphBuilder, w: ModelWeights, layers: LayerPlan[], input: string): string[] {
  const outs: string[] = [];
  for (const l of layers) {
    if (l.type === 'Detect') break;
    outs[l.index] = emitLayer(g, w, l, l.from.map((j) => (j < 0 ? input : outs[j]!)));
  }
  return outs;
}

function finishModel(desc: ModelDescription, g: GraphBuilder, inputs: IoSpec[], outputs: IoSpec[], opts: OnnxExportOptions, meta: Record<string, string>): ModelProto {
  const opset = opts.opset ?? 13;
  if (!EXPORT_OPSETS.includes(opset)) throw new RangeError(`opset: ${String(opset)} is not one of ${EXPORT_OPSETS.join(', ')}`);
  const metadataProps: StringStringEntry[] = Object.entries({ ...meta, ...(opts.metadata ?? {}) }).map(([key, value]) => ({ key, value }));
  return {
    irVersion: irVersionForOpset(opset),
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'kd-edge',
    producerVersion: opts.producerVersion ?? '',
    domain: '',
    modelVersion: 0,
    docString: `${desc.type} ${desc.scale} exported by kd-edge`,
    graph: g.graph('main_graph', inputs, outputs),
    metadataProps,
  };
}

function namesOf(desc: ModelDescription, opts: OnnxExportOptions): string[] {
  const names = opts.names ?? desc.names ?? Array.from({ length: desc.nc }, (_, i) => `class${i}`);
  if (names.length !== desc.nc) throw new RangeError(`names: ${names.length} names for ${desc.nc} classes`);
  return [...names];
}

function exportYolo(desc: YoloDescription, w: ModelWeights, opts: OnnxExportOptions): ModelProto {
  const plan = planYolo(desc);
  const [h, wd] = sides(opts.imgsz, plan.maxStride);
  const dynBatch = opts.dynamic === true || opts.dynamic === 'batch';
  const dynHw = opts.dynamic === true;
  const batch = dynBatch ? undefined : (opts.batch ?? 1);
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw new RangeError(`batch: expected an integer >= 1, got ${String(opts.batch)}`);
  const d = plan.layers[plan.layers.length - 1] as Extract<LayerPlan, { type: 'Detect' }>;
  const grids = dynHw ? undefined : d.levels.map((lv) => [h / lv.stride, wd / lv.stride] as [number, number]);
  const g = new GraphBuilder();
  const images = g.input('images');
  const outs = emitBody(g, w, plan.layers, images);
  const heads = emitDetect(g, w, d, desc.anchors, d.from.map((j) => outs[j]!), { batch, grids }, opts.raw === true);
  const no = d.nc + 5;
  const bDim = batch ?? 'batch';
  const outputs: IoSpec[] = heads.map((t, l) => {
    const name = g.rename(t, `output${l}`);
    if (opts.raw === true) {
      const [ny, nx]: (number | string)[] = grids?.[l] ?? [`height_${d.levels[l]!.stride}`, `width_${d.levels[l]!.stride}`];
      return { name, shape: [bDim, d.na, ny!, nx!, no] };
    }
    const anchorsTotal = grids === undefined ? 'anchors' : grids.reduce((a, [ny, nx]) => a + d.na * ny * nx, 0);
    return { name, shape: [bDim, anchorsTotal, no] };
  });
  const layout: OutputLayout = opts.raw === true ? 'yolov5-raw' : 'yolov5-decoded';
  return finishModel(desc, g, [{ name: images, shape: [bDim, 3, dynHw ? 'height' : h, dynHw ? 'width' : wd] }], outputs, opts, {
    stride: String(Math.max(...plan.strides)),
    names: pyNamesDict(namesOf(desc, opts)),
    task: 'detect',
    imgsz: `[${h}, ${wd}]`,
    output_layout: layout,
    strides: JSON.stringify(plan.strides),
    anchors: JSON.stringify(desc.anchors),
  });
}

function exportClassifier(desc: ClassifierDescription, w: ModelWeights, opts: OnnxExportOptions): ModelProto {
  const plan = planClassifier(desc);
  const [h, wd] = sides(opts.imgsz, plan.maxStride);
  const dynBatch = opts.dynamic === true || opts.dynamic === 'batch';
  const dynHw = opts.dynamic === true;
  const batch = dynBatch ? undefined : (opts.batch ?? 1);
  const g = new GraphBuilder();
  const images = g.input('images');
  const outs = emitBody(g, w, plan.layers, images);
  const { head } = plan;
  const scope = `/${head.prefix}`;
  const f = emitConv(g, w, head.conv, outs[outs.length - 1]!);
  const pooled = g.op('GlobalAveragePool', [f], `${scope}/pool/GlobalAveragePool`);
  const flat = g.op('Flatten', [pooled], `${scope}/Flatten`, { axis: int(1) });
  const cin = head.conv.c2;
  const lw = takeWeight(w, `${head.prefix}.linear.weight`, cin * head.nc);
  // Ours is [in, out] (matMul layout); Gemm with transB takes PyTorch's [out, in].
  const wt = new Float32Array(lw.length);
  for (let i = 0; i < cin; i++) for (let o = 0; o < head.nc; o++) wt[o * cin + i] = lw[i * head.nc + o]!;
  const W = g.float(`${head.prefix}.linear.weight`, [head.nc, cin], wt);
  const B = g.float(`${head.prefix}.linear.bias`, [head.nc], Float32Array.from(takeWeight(w, `${head.prefix}.linear.bias`, head.nc)));
  const logits = g.op('Gemm', [flat, W, B], `${scope}/linear/Gemm`, { alpha: { float: 1 }, beta: { float: 1 }, transB: int(1) });
  const bDim = batch ?? 'batch';
  const out = g.rename(logits, 'output0');
  return finishModel(desc, g, [{ name: images, shape: [bDim, 3, dynHw ? 'height' : h, dynHw ? 'width' : wd] }], [{ name: out, shape: [bDim, head.nc] }], opts, {
    stride: String(plan.maxStride),
    names: pyNamesDict(namesOf(desc, opts)),
    task: 'classify',
    imgsz: `[${h}, ${wd}]`,
    output_layout: 'logits' satisfies OutputLayout,
  });
}

/**
 * Exports a kd-trainer model to ONNX: input `images` [N, 3, H, W] float32 in 0..1, BatchNorm folded
 * into the convolutions, and for detectors `output0` [N, A, 5+nc] decoded as ultralytics YOLOv5
 * decodes (or the raw heads), with `stride` and `names` metadata as ultralytics writes them.
 * @example
 * const model = exportOnnx(desc, weights, { imgsz: 320, opset: 13 });
 * await writeOnnxFile('model.onnx', model);
 */
export function exportOnnx(desc: ModelDescription, weights: ModelWeights, opts: OnnxExportOptions): ModelProto {
  if (desc.type === 'yolov5') return exportYolo(desc, weights, opts);
  if (desc.type === 'classifier') return exportClassifier(desc, weights, opts);
  throw new RangeError(`description.type: ${JSON.stringify((desc as { type: unknown }).type)} is not 'yolov5' or 'classifier'`);
}
