import type { ManifestTarget } from '@kd-edge/core';
import type { ExportFormat } from './export-schema.js';

/** The two int8 QDQ files: S8S8 (int8 activations) and U8S8 (uint8 activations), from one calibration. */
export type Int8Variant = 'S8S8' | 'U8S8';

/**
 * What each artifact is for, as the export table prints it. S8S8 is what TensorRT and ONNX Runtime on ARM64
 * run fused; on x86 ONNX Runtime fuses only U8S8 for YOLOv5 (every convolution output has two readers), so
 * S8S8 runs there slower than fp32 and U8S8 is the x86 file (docs/results.md, issues 3 and 17).
 */
export function artifactTarget(format: ExportFormat, variant?: Int8Variant, trtVersions: readonly string[] = []): string {
  switch (format) {
    case 'onnx': return 'reference; CPU fallback';
    case 'fp16': return 'GPU execution providers';
    case 'int8-dynamic': return 'size only (slow on CPU)';
    case 'int8': return variant === 'U8S8' ? 'x86-64 CPU (ONNX Runtime)' : 'TensorRT, ARM64 CPU (ORT)';
    case 'trt': return `TensorRT ${trtVersions.join(', ')} (engine built on device)`;
  }
}

/** What `manifestTargets` reads from an export row. */
export interface TargetRow {
  format: ExportFormat;
  file: string;
  variant?: Int8Variant;
  speedup?: number;
}

/**
 * The manifest's `targets`, most preferred first, from the export's rows: U8S8 for x86-64 ONNX Runtime,
 * S8S8 for ARM64 ONNX Runtime, fp32 everywhere as the fallback, and the TensorRT engine (built on the device
 * from `onnxFile`) where a plan was exported. An int8 file the export measured slower than fp32 on a host of
 * that architecture is left out of that architecture (returned in `dropped`), so no device is sent a file
 * known to be slower than fp32 on its runtime.
 */
export function manifestTargets(
  rows: readonly TargetRow[],
  options: { hostArch?: string; tensorrt?: { onnxFile: string; int8: boolean } } = {},
): { targets: ManifestTarget[]; dropped: string[] } {
  const targets: ManifestTarget[] = [];
  const dropped: string[] = [];
  const measuredSlower = (r: TargetRow, arch: string): boolean => options.hostArch === arch && r.speedup !== undefined && r.speedup < 1;
  const u8 = rows.find((r) => r.format === 'int8' && r.variant === 'U8S8');
  if (u8) {
    if (measuredSlower(u8, 'x86_64')) dropped.push(`${u8.file}: measured ${u8.speedup!.toFixed(2)}× fp32 on this x86-64 host, not listed for x86_64`);
    else targets.push({ file: u8.file, precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8', note: 'U8S8 QDQ: ONNX Runtime fuses it into QLinearConv on x86-64' });
  }
  const s8 = rows.find((r) => r.format === 'int8' && r.variant !== 'U8S8');
  if (s8) {
    if (measuredSlower(s8, 'aarch64')) dropped.push(`${s8.file}: measured ${s8.speedup!.toFixed(2)}× fp32 on this ARM64 host, not listed for aarch64`);
    else targets.push({ file: s8.file, precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8', note: 'S8S8 QDQ: what ONNX Runtime runs fused on ARM64; never served on x86-64, where it is slower than fp32' });
  }
  const fp32 = rows.find((r) => r.format === 'onnx');
  if (fp32) targets.push({ file: fp32.file, precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'], note: 'fallback where no faster file is listed' });
  if (options.tensorrt) {
    targets.push({
      file: options.tensorrt.onnxFile, precision: options.tensorrt.int8 ? 'int8' : 'fp16', runtime: 'tensorrt', arch: ['aarch64', 'x86_64'],
      note: 'engine built on the device from the plan and calibration cache of its TensorRT version (tensorrt.versions); fp16 when none matches',
    });
  }
  return { targets, dropped };
}
