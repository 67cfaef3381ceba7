import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The exports of wasm/kd-simd.wasm (source: native/kd-simd.c); every pointer is a heap byte offset. */
export interface KdSimd {
  kd_moments(x: number, rows: number, c: number, mean: number, variance: number, acc: number): void;
  kd_bn_act(x: number, rows: number, c: number, scale: number, shift: number, act: number, y: number): void;
  kd_bn_act_grad(
    x: number, dy: number, rows: number, c: number, scale: number, shift: number,
    mean: number, rstd: number, act: number, dz: number, sums: number, acc: number,
  ): void;
  kd_bn_grad_input(x: number, dz: number, rows: number, c: number, coef: number, dx: number): void;
  kd_silu(x: number, n: number, y: number): void;
  kd_col2im(
    cols: number, n: number, oh: number, ow: number, kh: number, kw: number, ci: number, h: number, w: number,
    sh: number, sw: number, pt: number, pl: number, dx: number,
  ): void;
  kd_im2col(
    x: number, n: number, h: number, w: number, ci: number, kh: number, kw: number, sh: number, sw: number,
    pt: number, pl: number, oh: number, ow: number, cols: number,
  ): void;
  kd_gemm_tn(a: number, lda: number, b: number, ldb: number, m: number, k: number, n: number, c: number): void;
  kd_take_cols(x: number, rows: number, c: number, from: number, width: number, out: number): void;
  kd_put_cols(x: number, rows: number, width: number, c: number, at: number, out: number): void;
}

/** Heap byte offset of a float32 tensor's data on `backend`. */
export function heapOffset(backend: BackendWasm, t: { dataId: object; dtype: string }): number {
  if (t.dtype !== 'float32') throw new TypeError(`kd-simd kernels take float32, got ${t.dtype}`);
  return backend.dataIdMap.get(t.dataId)!.memoryOffset;
}

// The project compiles without lib.dom, which is where TypeScript declares WebAssembly; this is the
// part of it used here.
interface WasmMemory { readonly buffer: ArrayBuffer }
interface WasmModule { readonly __brand?: 'WebAssembly.Module' }
const WebAssembly = (globalThis as unknown as { WebAssembly: {
  Memory: abstract new (...args: never[]) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
  validate(bytes: Uint8Array): boolean;
} }).WebAssembly;

/** Where the built module sits, relative to this file in src/ and to the bundles in dist/. */
const CANDIDATES = ['../wasm/kd-simd.wasm', '../../wasm/kd-simd.wasm', '../../../wasm/kd-simd.wasm'];

let compiled: WasmModule | null | undefined;

function compile(): WasmModule | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  for (const rel of CANDIDATES) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(file)) continue;
    const bytes = readFileSync(file);
    // A runtime without WebAssembly SIMD cannot validate it; the composed kernels serve then.
    if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
    break;
  }
  return compiled;
}

const instances = new WeakMap<WasmMemory, KdSimd>();

/** The WebAssembly.Memory that holds tfjs-backend-wasm's tensors (Emscripten keeps it as asm.memory). */
function heapOf(backend: BackendWasm): WasmMemory | undefined {
  const module = backend.wasm as unknown as { asm?: { memory?: unknown }; wasmMemory?: unknown };
  const memory = module.asm?.memory ?? module.wasmMemory;
  return memory instanceof WebAssembly.Memory ? memory : undefined;
}

/**
 * kd-simd's kernels bound to `backend`'s heap (one instance per heap, so every worker replica has its
 * own), or null when the module or the heap cannot be had.
 */
export function kdSimd(backend: BackendWasm): KdSimd | null {
  const memory = heapOf(backend);
  if (memory === undefined) return null;
  const cached = instances.get(memory);
  if (cached !== undefined) return cached;
  const module = compile();
  if (module === null) return null;
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KdSimd;
  instances.set(memory, exports);
  return exports;
}

/** kd-simd bound to `backend`'s heap; throws when it cannot be had (registerWasmKernels checks first). */
export function requireKdSimd(backend: BackendWasm): KdSimd {
  const simd = kdSimd(backend);
  if (simd === null) throw new Error('kd-simd.wasm is not available on this wasm backend');
  return simd;
}

/** Whether kd-simd.wasm is present and this runtime can run it. */
export function kdSimdAvailable(): boolean {
  return compile() !== null;
}
