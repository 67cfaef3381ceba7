import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isModelName, isModelVersion, isReservedDeviceId, MAX_ADAPT_EPOCHS, MAX_ADAPT_TIME_BUDGET_SEC, RESERVED_DEVICE_IDS } from '@kd-edge/core';
import { CAPTURE_POLICY_DEFAULTS } from '../adapt/capture-policy.js';
import { FRAME_CAPTURE_DEFAULTS } from '../adapt/frame-capture.js';
import { AgentError } from '../errors.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const idString = z.string().regex(ID, 'letters, digits, _ and -, starting with a letter or digit, at most 64');

const brokerSchema = z.object({
  url: z.string().regex(/^(mqtts?|wss?):\/\/.+/, 'an mqtt://, mqtts://, ws:// or wss:// URL').default('mqtt://127.0.0.1:1883'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** PEM files: a custom CA, and a client certificate + key for mutual TLS. */
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  /** 'auto': MQTT 5, falling back to 3.1.1 when the broker refuses 5 (kd-fleet's embedded aedes broker). */
  protocolVersion: z.union([z.literal(5), z.literal(4), z.literal('auto')]).default('auto'),
  keepalive: z.number().int().min(5).max(3600).default(30),
  /** Reconnect backoff (ms): base, cap. */
  reconnectMinMs: z.number().int().min(10).default(1000),
  reconnectMaxMs: z.number().int().min(10).default(60_000),
  /** MQTT 5 session expiry (s): how long the broker keeps commands for an offline device. */
  sessionExpirySec: z.number().int().min(0).default(7 * 24 * 3600),
}).strict().refine((b) => (b.cert === undefined) === (b.key === undefined), { message: 'cert and key go together', path: ['cert'] });

const runtimeSchema = z.object({
  /** ONNX Runtime execution providers, most preferred first. */
  providers: z.array(z.enum(['tensorrt', 'cuda', 'cpu'])).min(1).default(['cpu']),
  /** trtexec: a path, 'auto' (PATH, then /usr/src/tensorrt/bin/trtexec) or false (never). */
  trtexec: z.union([z.string(), z.literal(false)]).default('auto'),
  threads: z.number().int().min(0).default(0),
  /**
   * The TensorRT runner (issue 17, docs/trt-runner.md): serve through it when a deploy has an engine for it. Absent:
   * ONNX Runtime serves, as before.
   */
  trtRunner: z.object({
    /** The runner's argv: the built kd-trt-runner binary, or the ONNX Runtime stand-in in tests. */
    command: z.array(z.string().min(1)).min(1, 'the runner\'s argv, e.g. [/opt/kd-agent/bin/kd-trt-runner]'),
    /** Where the shared-memory files go; the runner's `--shm-dir`. */
    shmDir: z.string().min(1).default('/dev/shm'),
    /** This many crashes within crashWindowSec and the agent serves with ONNX Runtime instead. */
    maxCrashes: z.number().int().min(1).default(3),
    crashWindowSec: z.number().positive().default(600),
  }).strict().optional(),
}).strict();

const limitsSchema = z.object({
  maxPackageBytes: z.number().int().positive().default(512 * 1024 * 1024),
  reserveDiskBytes: z.number().int().min(0).default(64 * 1024 * 1024),
  /** Reports kept on disk while the broker is unreachable. */
  outboxMessages: z.number().int().positive().default(1000),
  outboxBytes: z.number().int().positive().default(16 * 1024 * 1024),
  /** A requested MQTT chunk not received within this is asked for again. */
  chunkTimeoutMs: z.number().int().min(100).default(10_000),
  /**
   * HTTP package downloads. The whole download, retries and waits included, ends within the deadline
   * (0: none), so a server that keeps the connection barely alive cannot hold a deploy forever; the
   * part is kept and the next deploy resumes it. Why these defaults: see http-download.ts.
   */
  downloadDeadlineSec: z.number().int().min(0).max(7 * 24 * 3600).default(1800),
  /** A connection slower than this over `downloadRateWindowSec` is abandoned as stalled and retried (0: no check). */
  downloadMinBytesPerSec: z.number().int().min(0).default(1024),
  downloadRateWindowSec: z.number().int().min(1).max(3600).default(30),
  /** Retryable failures (network, timeouts, stalls, 5xx/408/429) are retried this long after the download last progressed (0: never). */
  downloadRetryWindowSec: z.number().int().min(0).max(24 * 3600).default(300),
  /** A socket silent this long fails the attempt (retried within the window). */
  downloadIdleTimeoutSec: z.number().int().min(1).max(3600).default(30),
}).strict();

const benchmarkSchema = z.object({
  warmup: z.number().int().min(0).default(10),
  iterations: z.number().int().min(1).default(100),
}).strict();

const serveSchema = z.object({
  source: z.object({
    dir: z.string().optional(),
    replay: z.string().optional(),
    fps: z.number().positive().default(5),
    loop: z.boolean().default(true),
  }).strict().refine((s) => (s.dir === undefined) !== (s.replay === undefined), { message: 'give exactly one of dir or replay' }).optional(),
  serial: z.object({ path: z.string().min(1), baud: z.number().int().positive().default(115200) }).strict().optional(),
  detectionsPerSecond: z.number().positive().default(5),
  conf: z.number().min(0).max(1).default(0.25),
  iou: z.number().min(0).max(1).default(0.45),
}).strict();

/**
 * Frame capture for on-device adaptation (issue 16): a bounded sample of served frames kept on the device. Why the
 * defaults are what they are: see CAPTURE_POLICY_DEFAULTS and FRAME_CAPTURE_DEFAULTS.
 */
const captureSchema = z.object({
  enabled: z.boolean().default(false),
  /** Default `<dataDir>/capture`. */
  dir: z.string().min(1).optional(),
  /** Keep every Nth frame served. */
  everyN: z.number().int().min(1).default(CAPTURE_POLICY_DEFAULTS.everyN),
  /** Band of detection scores that make a frame uncertain, [low, high); low defaults to `serve.conf`. */
  uncertainLow: z.number().min(0).max(1).optional(),
  uncertainHigh: z.number().min(0).max(1).default(CAPTURE_POLICY_DEFAULTS.uncertainHigh),
  /** At most one uncertain frame per this many milliseconds. */
  uncertainMinIntervalMs: z.number().int().min(0).default(CAPTURE_POLICY_DEFAULTS.uncertainMinIntervalMs),
  maxFrames: z.number().int().positive().default(FRAME_CAPTURE_DEFAULTS.maxFrames),
  /** Images plus sidecars. */
  maxBytes: z.number().int().positive().default(FRAME_CAPTURE_DEFAULTS.maxBytes),
  /** Consent to upload captured frames later; nothing uploads them yet, whatever this says. */
  upload: z.boolean().default(false),
}).strict().refine((c) => c.uncertainLow === undefined || c.uncertainLow < c.uncertainHigh, {
  message: 'must be below capture.uncertainHigh',
  path: ['uncertainLow'],
});

/** Options of `kd-trainer adapt` that the agent sets itself for each job, so `adapt.extraArgs` may not. */
export const ADAPT_OWN_FLAGS = ['--frames', '--teacher', '--weights', '--out', '--val', '--json', '--threads', '--batch', '--batch-size', '--cfg'] as const;

/**
 * On-device adaptation jobs (issue 16, docs/adaptation.md "The agent side"): how kd-trainer is run, the job's budgets,
 * the gates an adapted model passes, and recipe defaults that an `adapt` command's `recipe` and then the serving
 * package's manifest `adapt.recipe` override (unset ones keep kd-trainer's defaults; `imgsz` defaults to the serving
 * model's input size). A job is refused (AGENT_ADAPT_DISK) when it would leave less than `limits.reserveDiskBytes` free.
 */
const adaptSchema = z.object({
  /** The command that runs kd-trainer (an argument array, e.g. [/usr/bin/node, /opt/kd-trainer/dist/bin/kd-trainer.js]); default: the installed @kd-edge/trainer. */
  trainer: z.array(z.string().min(1)).min(1).optional(),
  /** More `kd-trainer adapt` options, e.g. [--backend, wasm]; not the ones the agent sets (ADAPT_OWN_FLAGS). */
  extraArgs: z.array(z.string()).default([]).refine(
    (a) => !a.some((x) => (ADAPT_OWN_FLAGS as readonly string[]).includes(x.split('=')[0]!)),
    { message: `must not set ${ADAPT_OWN_FLAGS.join(', ')} (the agent sets them for each job)` },
  ),
  /** The teacher (`name@version` in the teacher store) when the command names none; default the latest teacher deployed. */
  teacher: z.string().refine((t) => {
    const at = t.indexOf('@');
    return at > 0 && isModelName(t.slice(0, at)) && isModelVersion(t.slice(at + 1));
  }, { message: 'expected name@version of a teacher package, e.g. yolov5m-teacher@1.0.0' }).optional(),
  /** `nice -n` increment of the job (0: none; 10 leaves serving the CPU it needs). */
  nice: z.number().int().min(0).max(19).default(10),
  /** Training threads (kd-trainer --threads; UV_THREADPOOL_SIZE and OMP_NUM_THREADS are capped at it). */
  threads: z.number().int().min(1).max(256).default(1),
  /** Resident memory the job may take (MiB), child and descendants; the batch is chosen to fit it. Default: no limit, batch 16. */
  memoryBudgetMb: z.number().int().min(64).max(1024 * 1024).optional(),
  /** Memory a job takes before its first image (MiB): node, tfjs, student and teacher (see adapt-batch.ts). */
  memoryBaseMb: z.number().int().min(0).max(1024 * 1024).default(450),
  /** Fewest captured frames a job starts with. */
  minFrames: z.number().int().min(2).default(100),
  /** Finished job folders kept under `<dataDir>/adapt` (the oldest go first). */
  keepJobs: z.number().int().min(1).default(10),
  /** Gates the adapted model passes before it is activated, as a deploy's gates. */
  gates: z.object({
    maxP95Ms: z.number().min(0).optional(),
    minFps: z.number().min(0).optional(),
    minMap50: z.number().min(0).max(1).optional(),
  }).strict().default({}),
  epochs: z.number().int().min(1).max(MAX_ADAPT_EPOCHS).optional(),
  imgsz: z.number().int().min(32).max(2048).optional(),
  lr0: z.number().gt(0).max(1).optional(),
  pseudoConf: z.number().min(0).max(1).optional(),
  holdout: z.number().gt(0).max(0.9).optional(),
  timeBudgetSec: z.number().int().min(1).max(MAX_ADAPT_TIME_BUDGET_SEC).optional(),
  minGain: z.number().min(-1).max(1).optional(),
  maxLoss: z.number().min(0).max(1).optional(),
  /**
   * Start jobs without a command: in a daily window of local time (`HH:MM-HH:MM`, wrapping past midnight when the end
   * is earlier), at most one every `everyHours`, when no job is unfinished and the capture holds `minFrames`.
   */
  schedule: z.object({
    window: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM-HH:MM in local time, e.g. 01:00-05:00'),
    everyHours: z.number().positive().max(24 * 365).default(24),
    /** Activate an accepted result (true) or keep it for review. */
    activate: z.boolean().default(true),
  }).strict().optional(),
}).strict();

/** kd-agent's configuration: one YAML file, overridden by KD_AGENT_* variables, overridden by flags. */
export const AGENT_CONFIG_SCHEMA = z.object({
  fleet: idString.default('default'),
  deviceId: idString.optional(),
  dataDir: z.string().min(1).default('/var/lib/kd-agent'),
  /** Public keys (PEM files) trusted to sign packages and commands; several for rotation. */
  keys: z.array(z.string().min(1)).min(1, 'at least one trusted public key file'),
  broker: brokerSchema.default(brokerSchema.parse({})),
  runtime: runtimeSchema.default(runtimeSchema.parse({})),
  limits: limitsSchema.default(limitsSchema.parse({})),
  benchmark: benchmarkSchema.default(benchmarkSchema.parse({})),
  serve: serveSchema.default(serveSchema.parse({})),
  capture: captureSchema.default(captureSchema.parse({})),
  adapt: adaptSchema.default(adaptSchema.parse({})),
  /** Seconds between status refreshes (free disk, serving figures). */
  statusIntervalSec: z.number().int().min(1).default(60),
}).strict();

type ParsedAgentConfig = z.infer<typeof AGENT_CONFIG_SCHEMA>;

/** The `capture` section with its defaults filled in (`uncertainLow` from `serve.conf`). */
export type CaptureConfig = ParsedAgentConfig['capture'] & { uncertainLow: number };

/** The `adapt` section with its defaults filled in. */
export type AgentAdaptConfig = ParsedAgentConfig['adapt'];

/** The validated configuration, every default filled in. */
export type AgentConfig = Omit<ParsedAgentConfig, 'deviceId' | 'capture'> & { deviceId: string; capture: CaptureConfig };

/** Where a configuration comes from; later sources win. */
export interface AgentConfigSources {
  /** A YAML file. */
  file?: string;
  /** Environment (KD_AGENT_FLEET, KD_AGENT_BROKER__URL: `__` separates nesting levels). */
  env?: NodeJS.ProcessEnv;
  /** Values from flags, as nested objects ({ broker: { url } }). */
  overrides?: Record<string, unknown>;
}

/**
 * Loads, merges and validates the configuration; an invalid value fails here, with the file and the
 * field named (`agent.yaml: broker.url: an mqtt://, mqtts://, ws:// or wss:// URL`).
 * @example const config = await loadAgentConfig({ file: '/etc/kd-agent/agent.yaml', env: process.env });
 */
export async function loadAgentConfig(sources: AgentConfigSources): Promise<AgentConfig> {
  let fromFile: unknown = {};
  if (sources.file !== undefined) {
    let text: string;
    try {
      text = await readFile(sources.file, 'utf8');
    } catch (err) {
      throw new AgentError('AGENT_CONFIG_INVALID', `config ${sources.file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      fromFile = parseYaml(text) ?? {};
    } catch (err) {
      throw new AgentError('AGENT_CONFIG_INVALID', `config ${sources.file}: not YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) {
      throw new AgentError('AGENT_CONFIG_INVALID', `config ${sources.file}: expected a mapping of keys at the top level`);
    }
  }
  const merged = deepMerge(deepMerge(fromFile as Record<string, unknown>, envOverrides(sources.env ?? {})), sources.overrides ?? {});
  return validateAgentConfig(merged, sources.file ?? 'config');
}

/** Validates an already merged configuration object (see {@link loadAgentConfig}). */
export function validateAgentConfig(value: unknown, origin = 'config'): AgentConfig {
  const r = AGENT_CONFIG_SCHEMA.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new AgentError('AGENT_CONFIG_INVALID', `${origin}: ${issues.join('; ')}`);
  }
  const deviceId = r.data.deviceId ?? defaultDeviceId();
  if (isReservedDeviceId(deviceId)) {
    // The broker's ACL and kd-fleet refuse service accounts as devices: an agent under such a name would never be heard.
    throw new AgentError('AGENT_CONFIG_INVALID', `${origin}: deviceId: ${JSON.stringify(deviceId)}${r.data.deviceId === undefined ? ' (the host name)' : ''} is reserved for a kd-edge service account (${RESERVED_DEVICE_IDS.join(', ')}); choose another`);
  }
  const capture = { ...r.data.capture, uncertainLow: r.data.capture.uncertainLow ?? r.data.serve.conf };
  if (capture.enabled && !(capture.uncertainHigh > r.data.serve.conf && capture.uncertainLow < capture.uncertainHigh)) {
    // Detections under serve.conf are never served, so a band that ends there can never catch a frame.
    const low = r.data.capture.uncertainLow === undefined ? `capture.uncertainLow (default serve.conf, ${capture.uncertainLow})` : 'capture.uncertainLow';
    throw new AgentError(
      'AGENT_CONFIG_INVALID',
      `${origin}: capture.uncertainHigh: must be above serve.conf (${r.data.serve.conf}) and ${low}, got ${capture.uncertainHigh}`,
    );
  }
  return { ...r.data, deviceId, capture };
}

/** The host name made into a valid device id. */
export function defaultDeviceId(): string {
  const id = hostname().replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return id.length > 0 ? id : 'device';
}

/** KD_AGENT_A__B=value → { a: { b: value } }; values are parsed as YAML scalars/lists (numbers, booleans, [a, b]). */
export function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('KD_AGENT_') || raw === undefined) continue;
    const path = name.slice('KD_AGENT_'.length).split('__').map(camel);
    let node = out;
    for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]!] = scalar(raw);
  }
  return out;
}

function camel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function scalar(raw: string): unknown {
  try {
    const v: unknown = parseYaml(raw);
    return v === null ? raw : v;
  } catch {
    return raw;
  }
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlain(prev) && isPlain(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
