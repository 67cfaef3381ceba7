import { defaultModel, type Manifest, type ManifestModel, type ManifestTarget, type TargetArch } from '@kd-edge/core';

/** What the agent knows of its device that decides which file of a package serves (from `deviceFacts`). */
export interface TargetFacts {
  /** CPU architecture: Node's `os.arch()` (`x64`, `arm64`) or `uname -m` (`x86_64`, `aarch64`). */
  arch: string;
  /** TensorRT version reported by trtexec (`8.2.1`), or null when there is none. */
  tensorrt: string | null;
  /** The ONNX Runtime execution provider that will run the file (`cpu`, `cuda`, `tensorrt`). */
  executionProvider: string;
}

/** What TensorRT would serve on this device (the runner is not built yet: ONNX Runtime serves meanwhile). */
export interface TensorrtChoice {
  /** The device has TensorRT and the package a TensorRT target and plan: a TensorRT engine would serve. */
  wouldServe: boolean;
  /** The plan and calibration cache of the device's version; absent when none matches. */
  plan?: string;
  calibCache?: string;
  /** The version those files were written for (absent for a package with one unversioned plan). */
  trtVersion?: string;
  /** No files for the device's TensorRT version: the engine is built fp16 from the plan's ONNX model. */
  fp16Fallback: boolean;
  reason: string;
}

/** The file to serve and why. */
export interface PickedTarget {
  /** The model entry ONNX Runtime loads. */
  model: ManifestModel;
  /** The target entry chosen, when the manifest has targets and one applied. */
  target?: ManifestTarget;
  reason: string;
  /** Present when the device has TensorRT. */
  tensorrt?: TensorrtChoice;
}

/** Node's and uname's names of one architecture, as a manifest target spells it. */
export function targetArch(arch: string): TargetArch | undefined {
  switch (arch) {
    case 'x64': case 'x86_64': case 'amd64': return 'x86_64';
    case 'arm64': case 'aarch64': return 'aarch64';
    case 'arm': case 'armv7l': return 'armv7l';
    default: return undefined;
  }
}

/**
 * Whether a file is known to run slower than fp32 on this device's ONNX Runtime CPU provider: S8S8 (or int8 of
 * unknown kind) on x86-64, where ONNX Runtime fuses only U8S8 QDQ for YOLOv5 (docs/results.md, issue 17);
 * fp16 on any CPU, which runs it at fp32 speed behind casts at best.
 */
function knownSlower(t: ManifestTarget, arch: TargetArch): boolean {
  if (t.precision === 'fp16') return true;
  return arch === 'x86_64' && t.precision === 'int8' && t.quantization !== 'u8s8';
}

function modelOf(manifest: Manifest, file: string): ManifestModel | undefined {
  return manifest.models.find((m) => m.file === file);
}

/**
 * The file of a package this device serves, and why: a pure function of the manifest and the device's facts.
 * - No `targets` (packages before issue 17): the default model, as always.
 * - ONNX Runtime on the CPU: the first `onnxruntime` target listing the device's architecture that is not known to
 *   be slower than fp32 there (never S8S8 on x86-64; so x86-64 gets U8S8 when the package has it, and aarch64 the
 *   S8S8 file), else the fp32 model, else the default.
 * - Another execution provider (CUDA, ORT's TensorRT EP): the default model; the targets are for the CPU provider.
 * - With TensorRT on the device and a `tensorrt` target: records that a TensorRT engine would serve, with the plan
 *   and calibration cache of the device's exact version (fp16 when the package has none for it); ONNX Runtime still
 *   serves the file above until the TensorRT runner exists.
 * @example pickTarget(manifest, { arch: 'x64', tensorrt: null, executionProvider: 'cpu' }).model.file // 'model.int8.u8s8.onnx'
 */
export function pickTarget(manifest: Manifest, facts: TargetFacts): PickedTarget {
  const picked = pickOrtModel(manifest, facts);
  if (facts.tensorrt === null || facts.tensorrt === undefined) return picked;
  return { ...picked, tensorrt: pickTensorrt(manifest, facts.tensorrt) };
}

function pickOrtModel(manifest: Manifest, facts: TargetFacts): PickedTarget {
  const def = defaultModel(manifest);
  if (manifest.targets === undefined) return { model: def, reason: 'the package lists no targets: its default model' };
  const arch = targetArch(facts.arch);
  if (facts.executionProvider !== 'cpu') {
    return { model: def, reason: `ONNX Runtime's ${facts.executionProvider} provider: the default model (the targets are for the CPU provider)` };
  }
  const fp32 = manifest.models.find((m) => m.precision === 'fp32');
  if (arch === undefined) {
    return { model: fp32 ?? def, reason: `architecture ${facts.arch} is not one targets name: the ${fp32 ? 'fp32' : 'default'} model` };
  }
  const skipped: string[] = [];
  for (const t of manifest.targets) {
    if (t.runtime !== 'onnxruntime' || !t.arch.includes(arch)) continue;
    const model = modelOf(manifest, t.file);
    if (model === undefined) continue;
    if (knownSlower(t, arch)) {
      skipped.push(`${t.file} (${t.quantization ?? t.precision}, slower than fp32 here)`);
      continue;
    }
    const what = t.quantization ? `${t.precision} ${t.quantization.toUpperCase()}` : t.precision;
    return { model, target: t, reason: `${what} for ${arch} ONNX Runtime CPU${t.note ? `: ${t.note}` : ''}${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}` };
  }
  // Nothing listed for this device: fp32, never a file known to be slower than it.
  const fallback = fp32 ?? def;
  return { model: fallback, reason: `no target for ${arch} ONNX Runtime CPU: the ${fallback.precision} model${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}` };
}

/**
 * The TensorRT files for a device's TensorRT version: the `tensorrt.versions` entry of that exact version
 * (`major.minor.patch`: a calibration cache's header names one version, and TensorRT skips a cache that is not its
 * own); without `versions`, the package's single plan, whose own version the build checks. No entry for the
 * version: the engine is built fp16 and the report says so.
 */
export function pickTensorrt(manifest: Pick<Manifest, 'tensorrt' | 'targets'>, deviceVersion: string): TensorrtChoice {
  const trt = manifest.tensorrt;
  const hasTarget = manifest.targets === undefined || manifest.targets.some((t) => t.runtime === 'tensorrt');
  if (trt === undefined || !hasTarget) {
    return { wouldServe: false, fp16Fallback: false, reason: `TensorRT ${deviceVersion} is present but the package has no TensorRT plan or target` };
  }
  if (trt.versions === undefined) {
    return {
      wouldServe: true, plan: trt.plan, ...(trt.calibCache ? { calibCache: trt.calibCache } : {}), fp16Fallback: false,
      reason: `TensorRT ${deviceVersion}: the package's single plan ${trt.plan}`,
    };
  }
  const v = normaliseVersion(deviceVersion);
  const match = trt.versions.find((e) => e.trtVersion === v);
  if (match) {
    return {
      wouldServe: true, plan: match.plan, ...(match.calibCache ? { calibCache: match.calibCache } : {}), trtVersion: match.trtVersion, fp16Fallback: false,
      reason: `TensorRT ${v}: ${match.plan}${match.calibCache ? ` with ${match.calibCache}` : ''}`,
    };
  }
  return {
    wouldServe: true, plan: trt.versions[0]!.plan, fp16Fallback: true,
    reason: `TensorRT ${v} has no calibration cache or plan in the package (it has ${trt.versions.map((e) => e.trtVersion).join(', ')}): the engine is built fp16`,
  };
}

/** `8.2` → `8.2.0`; a build number (`8.6.1.6`) is dropped. */
function normaliseVersion(v: string): string {
  const parts = v.split('.');
  while (parts.length < 3) parts.push('0');
  return parts.slice(0, 3).join('.');
}
