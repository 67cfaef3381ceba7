/**
 * `npm run bench -w @kd-edge/core`: for yolov5n and yolov5s at 320 px, the fp32, fp16, int8
 * weight-only and int8 QDQ model sizes, ONNX Runtime CPU latency at batch 1 (median of many runs
 * after warm-up) and the int8 speed-up, and the time calibration takes per image. Weights are seeded
 * random (BatchNorm statistics included): sizes and speed do not depend on training; accuracy is
 * measured by `kd-trainer export` on a trained model.
 */
import { availableParallelism, cpus } from 'node:os';
import {
  encodeModel, exportOnnx, measureOrtLatency, planYolo, quantizeModel, yoloDescription, type YoloScale,
} from '../src/index.js';

const IMGSZ = 320;
const RUNS = Number(process.env.BENCH_RUNS ?? 100);
const CALIB_IMAGES = Number(process.env.BENCH_CALIB_IMAGES ?? 16);

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function randomWeights(scale: YoloScale, nc: number): { desc: ReturnType<typeof yoloDescription>; weights: Map<string, Float32Array> } {
  const desc = yoloDescription(scale, nc);
  const r = rng(7);
  const weights = new Map<string, Float32Array>();
  for (const spec of planYolo(desc).specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const fanIn = spec.shape.length === 4 ? spec.shape[0]! * spec.shape[1]! * spec.shape[2]! : 1;
    for (let i = 0; i < n; i++) {
      if (spec.name.endsWith('running_var')) v[i] = 0.5 + r();
      else if (spec.name.endsWith('running_mean') || spec.name.endsWith('bn.bias')) v[i] = (r() - 0.5) * 0.2;
      else if (spec.name.endsWith('bn.weight')) v[i] = 0.8 + 0.4 * r();
      else v[i] = ((r() * 2 - 1) * Math.sqrt(3)) / Math.sqrt(fanIn);
    }
    weights.set(spec.name, v);
  }
  return { desc, weights };
}

/** Smooth random images (blocks of colour), more like photos than white noise. */
function* images(n: number): Generator<Float32Array> {
  const r = rng(99);
  for (let k = 0; k < n; k++) {
    const img = new Float32Array(3 * IMGSZ * IMGSZ);
    for (let c = 0; c < 3; c++) {
      const base = r();
      for (let y = 0; y < IMGSZ; y++) for (let x = 0; x < IMGSZ; x++) {
        const blob = ((x >> 5) + (y >> 5) + c) % 3 === 0 ? 0.3 : 0;
        img[(c * IMGSZ + y) * IMGSZ + x] = Math.min(1, base * 0.7 + blob + 0.05 * r());
      }
    }
    yield img;
  }
}

const mb = (b: number): string => (b / 1e6).toFixed(2).padStart(7);

async function main(): Promise<void> {
  console.log(`# core quantization bench: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()}, node ${process.version}, ${IMGSZ} px, batch 1, ${RUNS} runs`);
  console.log('model     format        size MB   p50 ms   p90 ms  speed-up');
  for (const scale of ['n', 's'] as const) {
    const { desc, weights } = randomWeights(scale, 80);
    const fp32 = exportOnnx(desc, weights, { imgsz: IMGSZ });
    const variants: [string, Uint8Array][] = [['fp32', encodeModel(fp32)]];
    variants.push(['fp16', encodeModel((await quantizeModel(fp32, { mode: 'fp16' })).model)]);
    variants.push(['int8-weights', encodeModel((await quantizeModel(fp32, { mode: 'int8-weights' })).model)]);
    // The Detect decode stays float, as `kd-trainer export` does by default.
    const exclude = [/^\/model\.24\/(?!m\.\d+\/)/];
    const t0 = performance.now();
    const q = await quantizeModel(fp32, {
      mode: 'int8', method: 'minmax', exclude, calibration: { batches: () => images(CALIB_IMAGES), inputShape: [1, 3, IMGSZ, IMGSZ] },
    });
    const calibMs = (performance.now() - t0) / CALIB_IMAGES;
    variants.push(['int8 S8S8', encodeModel(q.model)]);
    const u8 = await quantizeModel(fp32, {
      mode: 'int8', method: 'minmax', exclude, activationType: 'uint8', calibration: { batches: () => images(CALIB_IMAGES), inputShape: [1, 3, IMGSZ, IMGSZ] },
    });
    variants.push(['int8 U8S8', encodeModel(u8.model)]);
    let base = 0;
    for (const [name, bytes] of variants) {
      const s = await measureOrtLatency(bytes, { runs: RUNS, warmup: 10 });
      if (name === 'fp32') base = s.p50;
      console.log(`yolov5${scale}  ${name.padEnd(12)} ${mb(bytes.length)}  ${s.p50.toFixed(2).padStart(7)}  ${s.p90.toFixed(2).padStart(7)}  ${(base / s.p50).toFixed(2).padStart(7)}×`);
    }
    console.log(`yolov5${scale}  int8 size ratio fp32/int8 ${(variants[0]![1].length / variants[3]![1].length).toFixed(2)}×; calibration + quantization ${calibMs.toFixed(0)} ms per image (${CALIB_IMAGES} images, minmax)`);
  }
}

await main();
