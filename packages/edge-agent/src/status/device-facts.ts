import { readFile } from 'node:fs/promises';
import { arch, cpus, platform, totalmem } from 'node:os';
import type { Hardware } from '@kd-edge/core';
import { detectGpuName } from '../runtime/gpu-name.js';
import { ortRuntimeInfo } from '../runtime/ort-info.js';
import { detectTrtexecVersion } from '../runtime/trtexec-version.js';

/** Where the Jetson facts are read from (tests point these at fixtures). */
export interface DeviceFactsOptions {
  /** trtexec found on the device, if any. */
  trtexec?: string;
  /** Default /proc/device-tree/model. */
  deviceTreeModel?: string;
  /** Default /etc/nv_tegra_release. */
  tegraRelease?: string;
}

/**
 * The device's hardware and software for its status: architecture, CPUs, memory, the Jetson model and
 * L4T release when on a Jetson, TensorRT (from trtexec) and the GPU when present, and ONNX Runtime's
 * version and execution providers. Every probe that fails leaves its field out; none throws. Nothing is kept between
 * calls: each agent holds its own (two agents in one process may report different facts, see `AgentOptions.targetFacts`).
 */
export async function deviceFacts(options: DeviceFactsOptions = {}): Promise<Hardware> {
  const ort = ortRuntimeInfo();
  const model = await readText(options.deviceTreeModel ?? '/proc/device-tree/model');
  const release = await readText(options.tegraRelease ?? '/etc/nv_tegra_release');
  const l4t = release === undefined ? undefined : parseL4tRelease(release);
  const jetson = model !== undefined && /jetson|nvidia/i.test(model)
    ? { model, ...(l4t === undefined ? {} : { l4t }) }
    : null;
  const tensorrt = options.trtexec === undefined ? null : await detectTrtexecVersion(options.trtexec).catch(() => null);
  const gpu = (await detectGpuName().catch(() => undefined)) ?? null;
  return {
    arch: arch(),
    platform: platform(),
    cpus: cpus().length,
    memTotalMb: Math.round(totalmem() / 2 ** 20),
    ...(cpus()[0]?.model ? { cpuModel: cpus()[0]!.model.trim().slice(0, 256) } : {}),
    jetson,
    tensorrt,
    gpu,
    ort: { version: ort.version, executionProviders: ort.executionProviders },
  };
}

/** `# R32 (release), REVISION: 7.1, GCID: …` → `32.7.1`. */
export function parseL4tRelease(text: string): string | undefined {
  const m = /#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)/.exec(text);
  return m ? `${m[1]}.${m[2]}` : undefined;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    // The device-tree model ends in a NUL byte.
    return (await readFile(file, 'utf8')).replace(/\0/g, '').trim() || undefined;
  } catch {
    return undefined;
  }
}
