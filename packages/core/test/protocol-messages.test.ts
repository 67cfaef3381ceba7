import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../src/package/keys.js';
import { makeAdapt } from '../src/protocol/adapt.js';
import { adaptedVersion } from '../src/protocol/adapt-version.js';
import { makeCommand } from '../src/protocol/command.js';
import { MAX_JSON_MESSAGE_BYTES, MAX_JSON_MESSAGE_DEPTH } from '../src/protocol/common.js';
import { makeEvent } from '../src/protocol/event.js';
import { parseMessage } from '../src/protocol/parse.js';
import { ProtocolError, type ProtocolErrorCode } from '../src/protocol/protocol-error.js';
import { protocolJsonSchemas } from '../src/protocol/schemas.js';
import { makeOfflineStatus, makeStatus } from '../src/protocol/status.js';
import type { MessageKind } from '../src/protocol/topics.js';
import { EXAMPLE_TAR_SHA256, exampleManifest, protocolExamples } from './protocol-fixtures.js';

const ex = protocolExamples();
type Json = Record<string, unknown>;
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

function refusal(kind: MessageKind, input: unknown, code: ProtocolErrorCode = 'PROTOCOL_SCHEMA'): ProtocolError {
  try {
    parseMessage(kind, input as object);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code, (err as Error).message).toBe(code);
    return err as ProtocolError;
  }
  throw new Error(`expected ${kind} to be refused`);
}

/** Set `path` (dotted, numeric parts index arrays) in a deep copy of `message`; `undefined` deletes it. */
function withField(message: object, path: string, value: unknown): Json {
  const copy = clone(message) as Json;
  const keys = path.split('.');
  let at = copy as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) at = at[key] as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy;
}

describe('round trips', () => {
  const cases: [MessageKind, object][] = [
    ['status', ex.status],
    ['status', ex.lastWill],
    ['cmd', ex.ping],
    ['cmd', ex.deploy],
    ['cmd', ex.rollback],
    ['cmd', ex.benchmark],
    ['cmd', ex.adapt],
    ['cmd', ex.adaptCancel],
    ['cmd', ex.adaptUpload],
    ['event', ex.event],
    ['event', ex.eventFailed],
    ['bench', ex.bench],
    ['adapt', ex.adaptTraining],
    ['adapt', ex.adaptDone],
    ['detections', ex.detections],
    ['chunk-request', ex.chunkRequest],
    ['manifest', ex.manifest],
  ];
  it.each(cases)('%s survives bytes, text and object input unchanged', (kind, message) => {
    const text = JSON.stringify(message);
    expect(parseMessage(kind, Buffer.from(text))).toEqual(message);
    expect(parseMessage(kind, new Uint8Array(Buffer.from(text)))).toEqual(message);
    expect(parseMessage(kind, text)).toEqual(message);
    expect(parseMessage(kind, JSON.parse(text) as object)).toEqual(message);
  });

  it('returns typed values discriminated on command', () => {
    const cmd = parseMessage('cmd', JSON.stringify(ex.deploy));
    if (cmd.command !== 'deploy') throw new Error('expected deploy');
    expect(cmd.package.sha256).toBe(EXAMPLE_TAR_SHA256);
    expect(cmd.manifest.output.layout).toBe('yolov5-decoded');
  });

  it('takes a status without deviceKey (agents older than issue 16, the last will)', () => {
    const older = withField(ex.status, 'deviceKey', undefined);
    expect(parseMessage('status', older)).toEqual(older);
    expect(ex.status.deviceKey?.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('keeps unknown extra fields (forward compatibility)', () => {
    const status = parseMessage('status', { ...clone(ex.status), uptimeS: 120, hardware: { ...clone(ex.status.hardware), npu: 'none' } });
    expect(status).toMatchObject({ uptimeS: 120, hardware: { npu: 'none' } });
    const cmd = parseMessage('cmd', { ...clone(ex.ping), priority: 'high' });
    expect(cmd).toMatchObject({ priority: 'high' });
  });
});

describe('builders', () => {
  it('fill v, type and ts', () => {
    const before = Date.now();
    const status = makeStatus({ deviceId: 'd1', online: true });
    expect(status).toMatchObject({ v: 1, type: 'status', deviceId: 'd1', online: true });
    expect(Date.parse(status.ts)).toBeGreaterThanOrEqual(before - 1000);
    expect(makeStatus({ deviceId: 'd1', online: true, ts: new Date('2026-01-02T03:04:05Z') }).ts).toBe('2026-01-02T03:04:05.000Z');
    expect(makeOfflineStatus('d1', '2026-01-02T03:04:05Z')).toEqual({ v: 1, type: 'status', deviceId: 'd1', online: false, ts: '2026-01-02T03:04:05Z' });
  });

  it('give events null commandId and command by default', () => {
    expect(makeEvent({ deviceId: 'd1', state: 'failed', code: 'PROTOCOL_JSON' })).toMatchObject({ commandId: null, command: null, state: 'failed' });
  });

  it('give commands a fresh id unless one is given', () => {
    const a = makeCommand({ command: 'ping', deviceId: 'd1' });
    const b = makeCommand({ command: 'ping', deviceId: 'd1' });
    expect(a.id).not.toBe(b.id);
    expect(makeCommand({ command: 'ping', deviceId: 'd1', id: 'x-1' }).id).toBe('x-1');
  });

  it('refuse what they would otherwise send, naming the field', () => {
    expect(() => makeStatus({ deviceId: 'd/1', online: true })).toThrow(/^status\.deviceId: expected a device id/);
    expect(() => makeEvent({ deviceId: 'd1', state: 'done' as 'failed' })).toThrow(/^event\.state: expected .*got "done"/);
    expect(() => makeCommand({ command: 'benchmark', deviceId: 'd1', iterations: 0 })).toThrow(/^benchmark\.iterations: expected a number >= 1, got 0/);
  });
});

describe('envelope checks', () => {
  it('refuses another protocol version with PROTOCOL_VERSION and the value', () => {
    for (const kind of ['status', 'cmd', 'event', 'bench', 'adapt', 'detections', 'chunk-request'] as const) {
      const message = { ...clone(ex[kind === 'cmd' ? 'ping' : kind === 'chunk-request' ? 'chunkRequest' : kind === 'adapt' ? 'adaptTraining' : kind]), v: 2 };
      const err = refusal(kind, message, 'PROTOCOL_VERSION');
      expect(err.value).toBe(2);
      expect(err.field).toBe('v');
      expect(err.message).toMatch(/protocol version 2 is not supported/);
    }
    // A v2 message may look nothing like v1: the version is what is reported.
    expect(refusal('status', { v: 7, type: 'state', whatever: true }, 'PROTOCOL_VERSION').value).toBe(7);
  });

  it('refuses a missing or non-integer v, and a wrong type, as schema errors', () => {
    expect(refusal('status', withField(ex.status, 'v', undefined)).message).toBe('status.v: expected 1, got missing');
    expect(refusal('status', { ...clone(ex.status), v: '1' }).message).toBe('status.v: expected 1, got "1"');
    expect(refusal('status', clone(ex.event)).message).toBe('status.type: expected "status", got "event"');
  });

  it('refuses payloads that are not UTF-8 JSON objects', () => {
    refusal('status', Buffer.from('{"v":1,'), 'PROTOCOL_JSON');
    refusal('status', Buffer.from([0x7b, 0xff, 0x7d]), 'PROTOCOL_JSON');
    expect(refusal('status', Buffer.alloc(0), 'PROTOCOL_JSON').message).toMatch(/empty/);
    expect(refusal('status', '[1]').message).toBe('status: expected a JSON object, got [1]');
    refusal('event', 'null');
  });

  it('refuses payloads over the size limit before parsing them', () => {
    const big = JSON.stringify({ ...clone(ex.status), pad: 'x'.repeat(MAX_JSON_MESSAGE_BYTES) });
    expect(refusal('status', big, 'PROTOCOL_JSON').message).toMatch(/more than the 1048576 allowed/);
    expect(() => parseMessage('status', JSON.stringify(ex.status), { maxBytes: 100 })).toThrow(/more than the 100 allowed/);
  });

  it('refuses deep nesting before anything walks it, naming where (an unknown field 200,000 levels deep)', () => {
    const deep = 200_000;
    const ping = JSON.stringify(ex.ping);
    const err = refusal('cmd', `${ping.slice(0, -1)},"extra":${'['.repeat(deep)}${']'.repeat(deep)}}`, 'PROTOCOL_JSON');
    expect(err.message).toBe(`cmd: the payload nests more than the ${MAX_JSON_MESSAGE_DEPTH} levels allowed (at extra[0][0][0]…, ${deep + 1} levels)`);
    expect(err.field).toBe('extra[0][0][0]…');
    const objects = 100_000;
    expect(refusal('cmd', `${ping.slice(0, -1)},"x":{"y":${'{"a":'.repeat(objects)}1${'}'.repeat(objects + 1)}}`, 'PROTOCOL_JSON').field).toBe('x.y.a.a…');
    // at the top level, and in arrays; brackets inside strings do not count
    expect(refusal('cmd', '['.repeat(deep) + ']'.repeat(deep), 'PROTOCOL_JSON').message).toMatch(/more than the 64 levels allowed \(at \[0\]\[0\]/);
    expect(parseMessage('cmd', `${ping.slice(0, -1)},"note":"${'{['.repeat(500)}"}`)).toMatchObject({ command: 'ping' });
    // exactly the limit passes; one more does not, as text and as a parsed object
    const atLimit = (n: number): string => `${ping.slice(0, -1)},"extra":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`;
    expect(parseMessage('cmd', atLimit(MAX_JSON_MESSAGE_DEPTH))).toMatchObject({ command: 'ping' });
    refusal('cmd', atLimit(MAX_JSON_MESSAGE_DEPTH + 1), 'PROTOCOL_JSON');
    expect(refusal('cmd', JSON.parse(atLimit(MAX_JSON_MESSAGE_DEPTH + 1)) as object, 'PROTOCOL_JSON').field).toBe('extra[0][0][0]…');
    expect(() => parseMessage('cmd', atLimit(10), { maxDepth: 9 })).toThrow(/more than the 9 levels/);
  });

  it('checks its kind argument', () => {
    expect(() => parseMessage('nope' as MessageKind, {})).toThrow(RangeError);
  });
});

describe('schemas refuse bad fields, naming them', () => {
  const cases: [string, MessageKind, object, string, unknown, RegExp][] = [
    ['status deviceId', 'status', ex.status, 'deviceId', 'bad id!', /^status\.deviceId: expected a device id.*got "bad id!"/],
    ['status online', 'status', ex.status, 'online', 'yes', /^status\.online: expected boolean, got "yes"/],
    ['status ts', 'status', ex.status, 'ts', '2026-02-30T00:00:00Z', /^status\.ts: expected an ISO 8601 date-time/],
    ['status ts zone', 'status', ex.status, 'ts', '2026-05-01T12:00:00', /^status\.ts: /],
    ['status hardware.cpus', 'status', ex.status, 'hardware.cpus', 1.5, /^status\.hardware\.cpus: expected an integer, got 1\.5/],
    ['status hardware.ort', 'status', ex.status, 'hardware.ort', undefined, /^status\.hardware\.ort: expected object, got missing/],
    ['status activeModel.sha256', 'status', ex.status, 'activeModel.sha256', 'ABC', /^status\.activeModel\.sha256: expected 64 lower-case hex/],
    ['status activeModel.precision', 'status', ex.status, 'activeModel.precision', 'fp64', /^status\.activeModel\.precision: expected "fp32" \| "fp16" \| "int8"/],
    ['status freeDiskMb', 'status', ex.status, 'freeDiskMb', -1, /^status\.freeDiskMb: expected a number >= 0, got -1/],
    ['status deviceKey.keyId', 'status', ex.status, 'deviceKey.keyId', 'XYZ', /^status\.deviceKey\.keyId: expected 16 lower-case hex characters/],
    ['status deviceKey.keyId of another key', 'status', ex.status, 'deviceKey.keyId', generateKeyPair().keyId, /^status\.deviceKey\.keyId: expected the id of publicKeyPem, 22ce29b74a6e642e, got "[0-9a-f]{16}"/],
    ['status deviceKey.publicKeyPem private', 'status', ex.status, 'deviceKey.publicKeyPem', generateKeyPair().privateKeyPem, /^status\.deviceKey\.publicKeyPem: expected an Ed25519 public key in PEM/],
    ['status deviceKey.publicKeyPem not a key', 'status', ex.status, 'deviceKey.publicKeyPem', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', /^status\.deviceKey\.publicKeyPem: expected an Ed25519 public key in PEM, got one that does not parse/],
    ['status deviceKey.publicKeyPem missing', 'status', ex.status, 'deviceKey.publicKeyPem', undefined, /^status\.deviceKey\.publicKeyPem: expected string, got missing/],
    ['ping id', 'cmd', ex.ping, 'id', '', /^ping\.id: expected an id of 1-128/],
    ['ping id length', 'cmd', ex.ping, 'id', 'a'.repeat(129), /^ping\.id: /],
    ['ping deviceId', 'cmd', ex.ping, 'deviceId', undefined, /^ping\.deviceId: expected string, got missing/],
    ['cmd command', 'cmd', ex.ping, 'command', 'reboot', /^cmd\.command: expected "ping" \| "deploy" \| "rollback" \| "benchmark" \| "adapt" \| "adapt-cancel" \| "adapt-upload", got "reboot"/],
    ['deploy package.sha256', 'cmd', ex.deploy, 'package.sha256', 'abc', /^deploy\.package\.sha256: expected 64 lower-case hex characters, got "abc"/],
    ['deploy package.size', 'cmd', ex.deploy, 'package.size', 0, /^deploy\.package\.size: expected a number >= 1/],
    ['deploy package.version', 'cmd', ex.deploy, 'package.version', '1.3.0', /^deploy\.package\.version: expected the manifest's version "1\.2\.0", got "1\.3\.0"/],
    ['deploy package.http.url', 'cmd', ex.deploy, 'package.http.url', 'file:///etc/passwd', /^deploy\.package\.http\.url: expected an http/],
    ['deploy package.mqtt.chunkSize', 'cmd', ex.deploy, 'package.mqtt.chunkSize', 10, /^deploy\.package\.mqtt\.chunkSize: expected a number >= 1024/],
    ['deploy manifest', 'cmd', ex.deploy, 'manifest', undefined, /^deploy\.manifest: expected a JSON object, got missing/],
    ['deploy manifest.output.shape', 'cmd', ex.deploy, 'manifest.output.shape', [1, 6300, 9], /^deploy\.manifest\.output\.shape\[2\]: expected 5 \+ names\.length = 7, got 9/],
    ['deploy manifest.files.0.sha256', 'cmd', ex.deploy, 'manifest.files.0.sha256', 'x', /^deploy\.manifest\.files\[0\]\.sha256: expected 64 lower-case hex characters, got "x"/],
    ['deploy manifest unknown field', 'cmd', ex.deploy, 'manifest.extra', 1, /^deploy\.manifest\.extra: expected no such field/],
    ['deploy gates.minMap50', 'cmd', ex.deploy, 'gates.minMap50', 1.5, /^deploy\.gates\.minMap50: expected a number <= 1/],
    ['deploy allowDowngrade', 'cmd', ex.deploy, 'allowDowngrade', 'yes', /^deploy\.allowDowngrade: expected boolean/],
    ['deploy signature.sig', 'cmd', ex.deploy, 'signature.sig', 'AAAA', /^deploy\.signature\.sig: expected a base64 Ed25519 signature/],
    ['rollback fromVersion', 'cmd', ex.rollback, 'fromVersion', 'v1', /^rollback\.fromVersion: expected a semver 2\.0\.0 version/],
    ['benchmark iterations', 'cmd', ex.benchmark, 'iterations', 1e9, /^benchmark\.iterations: expected a number <= 100000/],
    ['adapt jobId', 'cmd', ex.adapt, 'jobId', 'job 1', /^adapt\.jobId: expected an id of 1-128/],
    ['adapt jobId missing', 'cmd', ex.adapt, 'jobId', undefined, /^adapt\.jobId: expected string, got missing/],
    ['adapt recipe.epochs', 'cmd', ex.adapt, 'recipe.epochs', 1001, /^adapt\.recipe\.epochs: expected a number <= 1000, got 1001/],
    ['adapt recipe.epochs integer', 'cmd', ex.adapt, 'recipe.epochs', 2.5, /^adapt\.recipe\.epochs: expected an integer, got 2\.5/],
    ['adapt recipe.imgsz', 'cmd', ex.adapt, 'recipe.imgsz', 16, /^adapt\.recipe\.imgsz: expected a number >= 32, got 16/],
    ['adapt recipe.lr0', 'cmd', ex.adapt, 'recipe.lr0', 0, /^adapt\.recipe\.lr0: expected a number > 0, got 0/],
    ['adapt recipe.pseudoConf', 'cmd', ex.adapt, 'recipe.pseudoConf', 1.5, /^adapt\.recipe\.pseudoConf: expected a number <= 1/],
    ['adapt recipe.holdout', 'cmd', ex.adapt, 'recipe.holdout', 0.95, /^adapt\.recipe\.holdout: expected a number <= 0\.9/],
    ['adapt recipe.timeBudgetSec', 'cmd', ex.adapt, 'recipe.timeBudgetSec', 1e9, /^adapt\.recipe\.timeBudgetSec: expected a number <= 604800/],
    ['adapt recipe.memoryBudgetMb', 'cmd', ex.adapt, 'recipe.memoryBudgetMb', 1, /^adapt\.recipe\.memoryBudgetMb: expected a number >= 64/],
    ['adapt recipe.minGain', 'cmd', ex.adapt, 'recipe.minGain', -2, /^adapt\.recipe\.minGain: expected a number >= -1/],
    ['adapt recipe.maxLoss', 'cmd', ex.adapt, 'recipe.maxLoss', 'small', /^adapt\.recipe\.maxLoss: expected number, got "small"/],
    ['adapt activate', 'cmd', ex.adapt, 'activate', 'no', /^adapt\.activate: expected boolean, got "no"/],
    ['adapt teacher.version', 'cmd', ex.adapt, 'teacher.version', 'latest', /^adapt\.teacher\.version: expected a semver/],
    ['adapt teacher.name', 'cmd', ex.adapt, 'teacher.name', 'Teacher', /^adapt\.teacher\.name: expected a model name/],
    ['adapt base.version', 'cmd', ex.adapt, 'base.version', undefined, /^adapt\.base\.version: expected string, got missing/],
    ['adapt-cancel jobId', 'cmd', ex.adaptCancel, 'jobId', undefined, /^adapt-cancel\.jobId: expected string, got missing/],
    ['adapt-upload jobId', 'cmd', ex.adaptUpload, 'jobId', undefined, /^adapt-upload\.jobId: expected string, got missing/],
    ['adapt-upload url', 'cmd', ex.adaptUpload, 'url', 'ftp://fleet.example/x', /^adapt-upload\.url: expected an http:\/\/ or https:\/\/ URL/],
    ['adapt-upload url missing', 'cmd', ex.adaptUpload, 'url', undefined, /^adapt-upload\.url: expected string, got missing/],
    ['adapt message state', 'adapt', ex.adaptTraining, 'state', 'done', /^adapt\.state: expected "queued" \| .* got "done"/],
    ['adapt message jobId', 'adapt', ex.adaptTraining, 'jobId', '', /^adapt\.jobId: expected an id/],
    ['adapt message commandId', 'adapt', ex.adaptTraining, 'commandId', undefined, /^adapt\.commandId: expected string, got missing/],
    ['adapt message base', 'adapt', ex.adaptTraining, 'base', undefined, /^adapt\.base: expected object, got missing/],
    ['adapt message epoch', 'adapt', ex.adaptTraining, 'epoch', 11, /^adapt\.epoch: expected at most epochs \(10\), got 11/],
    ['adapt message epochs', 'adapt', ex.adaptTraining, 'epochs', 0, /^adapt\.epochs: expected a number >= 1/],
    ['adapt message losses', 'adapt', ex.adaptTraining, 'losses.box', 'high', /^adapt\.losses\.box: expected number, got "high"/],
    ['adapt message frames.holdout', 'adapt', ex.adaptTraining, 'frames.holdout', -1, /^adapt\.frames\.holdout: expected a number >= 0/],
    ['adapt message progress.done', 'adapt', ex.adaptTraining, 'progress', { done: 5, total: 4 }, /^adapt\.progress\.done: expected at most progress\.total \(4\), got 5/],
    ['adapt message holdout.after.map', 'adapt', ex.adaptTraining, 'holdout.after.map', 37.2, /^adapt\.holdout\.after\.map: expected a number <= 1, got 37\.2/],
    ['adapt message val.before.map50', 'adapt', ex.adaptDone, 'val.before.map50', -0.1, /^adapt\.val\.before\.map50: expected a number >= 0/],
    ['adapt message reasons', 'adapt', ex.adaptDone, 'reasons', ['x'.repeat(513)], /^adapt\.reasons\[0\]: expected at most 512 characters/],
    ['adapt message succeeded unaccepted', 'adapt', ex.adaptDone, 'accepted', false, /^adapt\.accepted: expected true with state "succeeded", got false/],
    ['adapt message succeeded unnamed', 'adapt', ex.adaptDone, 'version', undefined, /^adapt\.version: expected the adapted version with state "succeeded", got missing/],
    ['adapt message version of another base', 'adapt', ex.adaptDone, 'version', '1.3.0+adapt.jetson-01.1', /^adapt\.version: expected an adaptation of 1\.2\.0 on jetson-01 \(1\.2\.0\+adapt\.…\), got "1\.3\.0\+adapt\.jetson-01\.1"/],
    ['adapt message version of another device', 'adapt', ex.adaptDone, 'version', '1.2.0+adapt.jetson-02.1', /^adapt\.version: expected an adaptation of 1\.2\.0 on jetson-01/],
    ['adapt message version not adapted', 'adapt', ex.adaptDone, 'version', '1.2.1', /^adapt\.version: expected an adaptation/],
    ['adapt message failed without code', 'adapt', ex.adaptTraining, 'state', 'failed', /^adapt\.code: expected an error code with state "failed", got missing/],
    ['event state', 'event', ex.event, 'state', 'done', /^event\.state: expected "accepted" \| .* got "done"/],
    ['event commandId', 'event', ex.event, 'commandId', undefined, /^event\.commandId: expected string, got missing/],
    ['event progress.bytes', 'event', ex.event, 'progress.bytes', -5, /^event\.progress\.bytes: expected a number >= 0/],
    ['event code', 'event', ex.eventFailed, 'code', 'oops', /^event\.code: expected an error code in UPPER_SNAKE_CASE, got "oops"/],
    ['bench runtime', 'bench', ex.bench, 'runtime', 'tflite', /^bench\.runtime: expected "onnxruntime" \| "tensorrt", got "tflite"/],
    ['bench latencyMs.p95', 'bench', ex.bench, 'latencyMs.p95', 'fast', /^bench\.latencyMs\.p95: expected number, got "fast"/],
    ['bench iterations', 'bench', ex.bench, 'iterations', 0, /^bench\.iterations: /],
    ['bench input.shape', 'bench', ex.bench, 'input.shape', [], /^bench\.input\.shape: expected at least 1 item, got \[\]/],
    ['bench tegrastats.powerMw', 'bench', ex.bench, 'tegrastats.powerMw', { VDD_IN: 'lots' }, /^bench\.tegrastats\.powerMw\.VDD_IN: expected number/],
    ['bench accuracy.map50', 'bench', ex.bench, 'accuracy.map50', 50, /^bench\.accuracy\.map50: expected a number <= 1/],
    ['detections score', 'detections', ex.detections, 'detections.0.score', 1.2, /^detections\.detections\[0\]\.score: expected a number <= 1, got 1\.2/],
    ['detections box', 'detections', ex.detections, 'detections.1.box', [1, 2, 3], /^detections\.detections\[1\]\.box: expected at least 4 items, got \[1,2,3\]/],
    ['detections frame.width', 'detections', ex.detections, 'frame.width', 0, /^detections\.frame\.width: expected a number >= 1/],
    ['detections model.version', 'detections', ex.detections, 'model.version', 'latest', /^detections\.model\.version: expected a semver/],
    ['chunk-request indexes empty', 'chunk-request', ex.chunkRequest, 'indexes', [], /^chunk-request\.indexes: expected at least 1 item/],
    ['chunk-request indexes many', 'chunk-request', ex.chunkRequest, 'indexes', Array.from({ length: 65 }, (_, i) => i), /^chunk-request\.indexes: expected at most 64 items/],
    ['chunk-request indexes repeat', 'chunk-request', ex.chunkRequest, 'indexes', [3, 3], /^chunk-request\.indexes: expected distinct indexes, got \[3,3\]/],
    ['chunk-request index', 'chunk-request', ex.chunkRequest, 'indexes', [0, -1], /^chunk-request\.indexes\[1\]: expected a number >= 0, got -1/],
    ['chunk-request name', 'chunk-request', ex.chunkRequest, 'name', 'Yolo', /^chunk-request\.name: expected a model name/],
    ['manifest task', 'manifest', ex.manifest, 'task', 'segment', /^manifest\.task: /],
  ];
  it.each(cases)('%s', (_label, kind, message, path, value, pattern) => {
    const err = refusal(kind, withField(message, path, value));
    expect(err.message).toMatch(pattern);
    expect(err.issues.length).toBeGreaterThan(0);
    expect(err.field).toBe(err.issues[0]?.field);
  });

  it('lists every problem in issues and counts them in the message', () => {
    const err = refusal('detections', { ...clone(ex.detections), latencyMs: -1, skipped: 'x' });
    expect(err.issues.map((i) => i.field)).toEqual(['latencyMs', 'skipped']);
    expect(err.message).toMatch(/\(and 1 more problem\)$/);
  });

  it('refuses a deploy that says nowhere where the bytes are', () => {
    const deploy = withField(withField(ex.deploy, 'package.http', undefined), 'package.mqtt', undefined);
    expect(refusal('cmd', deploy).message).toBe('deploy.package.http: expected http or mqtt (where the bytes are)');
  });

  it('reports a manifest of another format version as PROTOCOL_VERSION', () => {
    refusal('manifest', { ...clone(ex.manifest), manifestVersion: 2 }, 'PROTOCOL_VERSION');
  });

  it('refuses a rejected job that says it was accepted', () => {
    expect(refusal('adapt', { ...clone(ex.adaptDone), state: 'rejected' }).message).toBe('adapt.accepted: expected false or missing with state "rejected", got true');
    expect(parseMessage('adapt', { ...clone(ex.adaptDone), state: 'rejected', accepted: false })).toMatchObject({ state: 'rejected' });
  });

  it('takes an adapted version whose base is itself an adaptation of the same release', () => {
    const again = { ...clone(ex.adaptDone), base: { name: 'yolov5n-pets', version: '1.2.0+adapt.jetson-01.1' }, version: '1.2.0+adapt.jetson-01.2' };
    expect(parseMessage('adapt', again)).toMatchObject({ version: '1.2.0+adapt.jetson-01.2' });
    expect(refusal('adapt', { ...again, version: '1.2.0+adapt.jetson-01.1.adapt.jetson-01.2' }).field).toBe('version');
  });

  it('builds adapt messages with a null commandId for a scheduled job', () => {
    expect(makeAdapt({ deviceId: 'd_1', jobId: 'sched-1', state: 'queued', base: { name: 'm', version: '1.0.0' } })).toMatchObject({ commandId: null, type: 'adapt', v: 1 });
    expect(() => makeAdapt({ deviceId: 'd_1', jobId: 'sched-1', state: 'succeeded', accepted: true, base: { name: 'm', version: '1.0.0' }, version: '1.0.0+adapt.d_1.1' })).toThrow(/^adapt\.version: /);
    expect(makeAdapt({ deviceId: 'd_1', jobId: 'sched-1', state: 'succeeded', accepted: true, base: { name: 'm', version: '1.0.0' }, version: adaptedVersion('1.0.0', 'd_1', 1) }).version).toBe('1.0.0+adapt.-d-u1.1');
  });

  it('accepts a deploy with an older manifest version pair as long as they agree', () => {
    const deploy = { ...clone(ex.deploy), manifest: exampleManifest('1.0.0+build.5'), package: { ...clone((ex.deploy as Json).package as Json), version: '1.0.0+build.5' } };
    expect(parseMessage('cmd', deploy)).toMatchObject({ package: { version: '1.0.0+build.5' } });
  });
});

describe('JSON Schema export', () => {
  it('describes every message with its required fields and keeps extra fields allowed', () => {
    const schemas = protocolJsonSchemas();
    expect(Object.keys(schemas).sort()).toEqual(['adapt', 'bench', 'chunk-header', 'chunk-request', 'cmd', 'detections', 'event', 'status']);
    expect(schemas.status).toMatchObject({ type: 'object', required: expect.arrayContaining(['v', 'type', 'deviceId', 'online', 'ts']) as unknown });
    expect(schemas.status.additionalProperties).toEqual({});
    // deviceKey is described but optional, so a non-TypeScript peer without it still validates.
    const props = schemas.status.properties as Record<string, { required?: string[] }>;
    expect(props.deviceKey?.required).toEqual(['keyId', 'publicKeyPem']);
    expect(schemas.status.required).not.toContain('deviceKey');
    expect((schemas.cmd.oneOf as unknown[]).length).toBe(7);
    expect(schemas.adapt).toMatchObject({ required: expect.arrayContaining(['jobId', 'commandId', 'state', 'base']) as unknown });
    expect(JSON.stringify(schemas['chunk-request'])).toContain('"pattern":"^[0-9a-f]{64}$"');
    expect(JSON.stringify(schemas.event)).toContain('"format":"date-time"');
  });
});
