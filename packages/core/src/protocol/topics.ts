import { isDeviceId, isFleetId, isModelName, isModelVersion } from './ids.js';
import { ProtocolError } from './protocol-error.js';

/** The first two levels of every protocol v1 topic; a fleet's topics live under `kd/v1/{fleet}`. */
export const TOPIC_PREFIX = 'kd/v1';

/** The JSON message kinds; each has a schema and parseMessage reads it. `manifest` is a signed model manifest. */
export const MESSAGE_KINDS = ['status', 'cmd', 'event', 'bench', 'adapt', 'detections', 'chunk-request', 'manifest'] as const;
/** A JSON message kind. */
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** What a topic carries: a JSON message kind, or `chunk` (binary chunk frames, see decodeChunkFrame). */
export type TopicKind = MessageKind | 'chunk';

/** A device topic, parsed. */
export interface DeviceTopic {
  fleet: string;
  kind: 'status' | 'cmd' | 'event' | 'bench' | 'adapt' | 'detections' | 'chunk-request';
  deviceId: string;
}

/** A model topic, parsed; `version` is unescaped (`1.0.0+build.5`). */
export interface ModelTopic {
  fleet: string;
  kind: 'manifest' | 'chunk';
  name: string;
  version: string;
  /** The device a chunk frame is addressed to (`…/chunks/{deviceId}`). */
  deviceId?: string;
}

/** A protocol topic, parsed by {@link parseTopic}. */
export type ParsedTopic = DeviceTopic | ModelTopic;

// The levels under devices/{id}/ and models/{name}/{version}/, and the kind each carries.
const DEVICE_LEAVES: Record<string, DeviceTopic['kind']> = {
  status: 'status',
  cmd: 'cmd',
  events: 'event',
  bench: 'bench',
  adapt: 'adapt',
  detections: 'detections',
  'chunks/req': 'chunk-request',
};
const MODEL_LEAVES: Record<string, ModelTopic['kind']> = { manifest: 'manifest', chunks: 'chunk' };

// MQTT-4.7.1: `+` and `#` are wildcards and `/` separates levels, so none may sit inside a level;
// `%` is escaped too so that decoding is unambiguous.
const ESCAPES: Record<string, string> = { '%': '%25', '+': '%2B', '#': '%23', '/': '%2F' };
const UNESCAPES: Record<string, string> = { '%25': '%', '%2B': '+', '%23': '#', '%2F': '/' };

/**
 * Escape a value for use as one topic level: `%` → `%25`, `+` → `%2B`, `#` → `%23`, `/` → `%2F`.
 * @example
 * escapeTopicSegment('1.0.0+build.5'); // '1.0.0%2Bbuild.5'
 */
export function escapeTopicSegment(value: string): string {
  if (typeof value !== 'string') throw new TypeError('value must be a string');
  return value.replace(/[%+#/]/g, (c) => ESCAPES[c] ?? c);
}

/**
 * Reverse {@link escapeTopicSegment}. Only the four escapes it writes (upper-case hex) are accepted, so
 * every value has exactly one topic; anything else throws ProtocolError 'PROTOCOL_TOPIC'.
 */
export function unescapeTopicSegment(segment: string): string {
  if (typeof segment !== 'string') throw new TypeError('segment must be a string');
  if (/[+#/]/.test(segment)) {
    throw new ProtocolError('PROTOCOL_TOPIC', `topic level ${JSON.stringify(segment)} holds a raw "+", "#" or "/"`, { value: segment });
  }
  return segment.replace(/%(..)?/gs, (match) => {
    const out = UNESCAPES[match];
    if (out === undefined) {
      throw new ProtocolError('PROTOCOL_TOPIC', `topic level ${JSON.stringify(segment)} holds ${JSON.stringify(match)}; only %25, %2B, %23 and %2F are escapes`, {
        value: segment,
      });
    }
    return out;
  });
}

/** Topic names and subscription filters of one fleet; every builder checks its arguments (RangeError). */
export interface FleetTopics {
  readonly fleet: string;
  /** `kd/v1/{fleet}`. */
  readonly root: string;
  /** `…/devices/{id}/status`: retained status and last will. */
  status(deviceId: string): string;
  /** `…/devices/{id}/cmd`: commands to the device. */
  cmd(deviceId: string): string;
  /** `…/devices/{id}/events`: command progress from the device. */
  events(deviceId: string): string;
  /** `…/devices/{id}/bench`: benchmark reports. */
  bench(deviceId: string): string;
  /** `…/devices/{id}/adapt`: the retained state of the device's latest adaptation job. */
  adapt(deviceId: string): string;
  /** `…/devices/{id}/detections`: inference results. */
  detections(deviceId: string): string;
  /** `…/devices/{id}/chunks/req`: chunk requests from the device. */
  chunkRequests(deviceId: string): string;
  /** `…/models/{name}/{version}/manifest` with the version escaped: the retained signed manifest. */
  manifest(name: string, version: string): string;
  /**
   * `…/models/{name}/{version}/chunks/{deviceId}` with the version escaped: binary chunk frames for the
   * device that asked (without `deviceId`, the shared `…/chunks` topic of protocol v1's first draft).
   */
  chunks(name: string, version: string, deviceId?: string): string;
  /** Subscription filters over every device or model of the fleet. */
  readonly filters: {
    /** `…/devices/+/status` */
    readonly status: string;
    /** `…/devices/+/events` */
    readonly events: string;
    /** `…/devices/+/bench` */
    readonly bench: string;
    /** `…/devices/+/adapt` */
    readonly adapt: string;
    /** `…/devices/+/detections` */
    readonly detections: string;
    /** `…/devices/+/chunks/req` */
    readonly chunkRequests: string;
    /** `…/models/+/+/manifest` */
    readonly manifests: string;
    /** `…/devices/{id}/#`: everything of one device. */
    device(deviceId: string): string;
    /** `kd/v1/{fleet}/#` */
    readonly all: string;
  };
}

function checkDevice(deviceId: string): string {
  if (!isDeviceId(deviceId)) throw new RangeError(`deviceId must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}, got ${JSON.stringify(deviceId)}`);
  return deviceId;
}

function checkModel(name: string, version: string): string {
  if (!isModelName(name)) throw new RangeError(`name must be a model name matching [a-z0-9][a-z0-9._-]{0,63}, got ${JSON.stringify(name)}`);
  if (!isModelVersion(version)) throw new RangeError(`version must be a semver 2.0.0 version, got ${JSON.stringify(version)}`);
  return `${name}/${escapeTopicSegment(version)}`;
}

/**
 * The topics of fleet `fleet`. Throws a RangeError when `fleet` is not a fleet id.
 * @example
 * const t = fleetTopics('lab');
 * t.cmd('jetson-01'); // 'kd/v1/lab/devices/jetson-01/cmd'
 * t.manifest('yolov5n-pets', '1.0.0+build.5'); // 'kd/v1/lab/models/yolov5n-pets/1.0.0%2Bbuild.5/manifest'
 */
export function fleetTopics(fleet: string): FleetTopics {
  if (!isFleetId(fleet)) throw new RangeError(`fleet must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}, got ${JSON.stringify(fleet)}`);
  const root = `${TOPIC_PREFIX}/${fleet}`;
  const device = (leaf: string) => (deviceId: string) => `${root}/devices/${checkDevice(deviceId)}/${leaf}`;
  return {
    fleet,
    root,
    status: device('status'),
    cmd: device('cmd'),
    events: device('events'),
    bench: device('bench'),
    adapt: device('adapt'),
    detections: device('detections'),
    chunkRequests: device('chunks/req'),
    manifest: (name, version) => `${root}/models/${checkModel(name, version)}/manifest`,
    chunks: (name, version, deviceId) =>
      `${root}/models/${checkModel(name, version)}/chunks${deviceId === undefined ? '' : `/${checkDevice(deviceId)}`}`,
    filters: {
      status: `${root}/devices/+/status`,
      events: `${root}/devices/+/events`,
      bench: `${root}/devices/+/bench`,
      adapt: `${root}/devices/+/adapt`,
      detections: `${root}/devices/+/detections`,
      chunkRequests: `${root}/devices/+/chunks/req`,
      manifests: `${root}/models/+/+/manifest`,
      device: (deviceId) => `${root}/devices/${checkDevice(deviceId)}/#`,
      all: `${root}/#`,
    },
  };
}

function topicError(topic: string, why: string): ProtocolError {
  return new ProtocolError('PROTOCOL_TOPIC', `topic ${JSON.stringify(topic)} ${why}`, { value: topic });
}

/**
 * Parse a topic a message arrived on into its kind and target. Throws ProtocolError 'PROTOCOL_TOPIC'
 * for a topic outside `kd/v1/{fleet}/…` (or outside `fleet`, when given), an unknown leaf, a bad id,
 * name or version, or a wildcard.
 * @example
 * parseTopic('kd/v1/lab/models/m/1.0.0%2Bbuild.5/chunks'); // { fleet: 'lab', kind: 'chunk', name: 'm', version: '1.0.0+build.5' }
 */
export function parseTopic(topic: string, fleet?: string): ParsedTopic {
  if (typeof topic !== 'string') throw new TypeError('topic must be a string');
  if (/[+#]/.test(topic)) throw topicError(topic, 'is a subscription filter (it holds "+" or "#"), not a topic');
  const parts = topic.split('/');
  if (parts[0] !== 'kd') throw topicError(topic, `is not under ${TOPIC_PREFIX}/`);
  if (parts[1] !== 'v1') throw topicError(topic, `is protocol ${JSON.stringify(parts[1] ?? '')}, not v1`);
  const topicFleet = parts[2] ?? '';
  if (!isFleetId(topicFleet)) throw topicError(topic, `has no valid fleet id at level 3 (${JSON.stringify(topicFleet)})`);
  if (fleet !== undefined && topicFleet !== fleet) throw topicError(topic, `belongs to fleet ${JSON.stringify(topicFleet)}, not ${JSON.stringify(fleet)}`);
  if (parts[3] === 'devices') {
    const deviceId = parts[4] ?? '';
    if (!isDeviceId(deviceId)) throw topicError(topic, `has no valid device id (${JSON.stringify(deviceId)})`);
    const kind = Object.hasOwn(DEVICE_LEAVES, parts.slice(5).join('/')) ? DEVICE_LEAVES[parts.slice(5).join('/')] : undefined;
    if (kind === undefined) throw topicError(topic, `is not a device topic (known: ${Object.keys(DEVICE_LEAVES).join(', ')})`);
    return { fleet: topicFleet, kind, deviceId };
  }
  if (parts[3] === 'models') {
    const name = parts[4] ?? '';
    if (!isModelName(name)) throw topicError(topic, `has no valid model name (${JSON.stringify(name)})`);
    const version = unescapeTopicSegment(parts[5] ?? '');
    if (!isModelVersion(version)) throw topicError(topic, `has no valid semver version (${JSON.stringify(version)})`);
    const leaf = parts.slice(6).join('/');
    // Chunk frames addressed to one device: …/chunks/{deviceId}.
    if (parts[6] === 'chunks' && parts.length === 8) {
      const deviceId = parts[7] ?? '';
      if (!isDeviceId(deviceId)) throw topicError(topic, `has no valid device id after chunks/ (${JSON.stringify(deviceId)})`);
      return { fleet: topicFleet, kind: 'chunk', name, version, deviceId };
    }
    const kind = Object.hasOwn(MODEL_LEAVES, leaf) ? MODEL_LEAVES[leaf] : undefined;
    if (kind === undefined) throw topicError(topic, `is not a model topic (known: ${Object.keys(MODEL_LEAVES).join(', ')})`);
    return { fleet: topicFleet, kind, name, version };
  }
  throw topicError(topic, 'is neither a devices/ nor a models/ topic');
}
