import type { EventMessage, StatusMessage } from '@kd-edge/core/protocol';

/** A device as the fleet knows it, from its retained status, its last will, its events and the operator's tags. */
export interface DeviceRecord {
  id: string;
  fleet: string;
  online: boolean;
  /** When the fleet first heard of it, ms since the epoch. */
  firstSeen: number;
  /** When the fleet last heard from the device itself (a status, event or bench report), ms. */
  lastSeen: number;
  agentVersion: string | null;
  /** The active model's identity and, when its status says, what serves it; null before the first deploy. */
  activeModel: ActiveModelRecord | null;
  /** The latest full status (after an offline will: the last full one with `online: false`), null if none yet. */
  status: StatusMessage | null;
  tags: string[];
  /** The device's latest event, and when it arrived (ms). */
  lastEvent: EventMessage | null;
  lastEventAt: number | null;
  /** When its retained status was cleared (the device was removed from the broker), or null. */
  removedAt: number | null;
  /** The device's own public key as the fleet pinned it (trust on first use), null until its agent reports one. */
  deviceKey: DeviceKeyRecord | null;
}

/**
 * The active model of a device: its identity, and the file and runtime that serve it as the agent's status reports
 * them (issue 17: one package carries a file per target; each device says which it serves). The serving fields are
 * absent when the status does not carry them (agents before issue 17, or a status that describes no loaded model).
 */
export interface ActiveModelRecord {
  name: string;
  version: string;
  sha256: string;
  /** The package path of the model file that serves (`model.int8.u8s8.onnx`). */
  file?: string;
  /** `fp32`, `fp16` or `int8`. */
  precision?: string;
  /** `onnxruntime` or `tensorrt` (the computation). */
  runtime?: string;
  /** ONNX Runtime's execution provider, or the TensorRT runner's description. */
  executionProvider?: string;
  /** The path that serves: `tensorrt-runner` or `onnxruntime` (in-process). */
  serving?: string;
}

/**
 * A device's pinned public key. The first key a device reports is pinned; a different one reported later does not
 * replace it but is kept as `mismatch` until an operator accepts one of the two (`DeviceRegistry.acceptKey`).
 */
export interface DeviceKeyRecord {
  keyId: string;
  publicKeyPem: string;
  /** When it was pinned: first seen, or accepted by an operator (ms). */
  pinnedAt: number;
  /** The latest other key the device reported after the pin, and when it was first seen (ms); null when none. */
  mismatch: { keyId: string; publicKeyPem: string; seenAt: number } | null;
}

/** One benchmark report as stored: the figures gates and charts use, and the whole message. */
export interface BenchRecord {
  id: number;
  deviceId: string;
  /** The report's own time stamp, ms. */
  ts: number;
  receivedAt: number;
  commandId: string | null;
  name: string;
  version: string;
  sha256: string;
  runtime: string;
  p50: number;
  p95: number;
  fps: number;
  /** Mean total power (tegrastats), mW, when measured. */
  powerMw: number | null;
  /** Hottest zone's mean temperature (tegrastats), °C, when measured. */
  tempC: number | null;
  /** On-device mAP50, when the package has a val/ set. */
  map50: number | null;
}

/** Filters of {@link DeviceRegistry.list}. */
export interface DeviceFilter {
  /** Only devices with this tag. */
  tag?: string;
  online?: boolean;
  /** Include devices whose retained status was cleared (default false). */
  includeRemoved?: boolean;
}

/** The figures of a bench report that a device list and the live `bench` event carry (ms, fps, mW, °C). */
export interface BenchSummary {
  /** The report's own time stamp, ms. */
  ts: number;
  p50: number;
  p95: number;
  fps: number;
  powerMw: number | null;
  tempC: number | null;
}

/** A stored report's {@link BenchSummary}. */
export function benchSummary(r: BenchRecord): BenchSummary {
  return { ts: r.ts, p50: r.p50, p95: r.p95, fps: r.fps, powerMw: r.powerMw, tempC: r.tempC };
}
