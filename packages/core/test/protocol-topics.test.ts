import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/protocol/protocol-error.js';
import { escapeTopicSegment, fleetTopics, parseTopic, unescapeTopicSegment } from '../src/protocol/topics.js';

function topicError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('PROTOCOL_TOPIC');
    return err as ProtocolError;
  }
  throw new Error('expected a PROTOCOL_TOPIC error');
}

describe('topic segment escaping', () => {
  it('escapes the build metadata of 1.0.0+build.5 and reverses it', () => {
    expect(escapeTopicSegment('1.0.0+build.5')).toBe('1.0.0%2Bbuild.5');
    expect(unescapeTopicSegment('1.0.0%2Bbuild.5')).toBe('1.0.0+build.5');
  });

  it('escapes %, #, / and + so that every value round-trips', () => {
    for (const value of ['a%b', '50%2B', 'x#y', 'a/b', '+#/%', '%252B', '']) {
      const escaped = escapeTopicSegment(value);
      expect(escaped).not.toMatch(/[+#/]/);
      expect(unescapeTopicSegment(escaped)).toBe(value);
    }
    expect(escapeTopicSegment('%2B')).toBe('%252B');
  });

  it('refuses escapes it never writes and raw wildcards', () => {
    topicError(() => unescapeTopicSegment('1.0.0%2bbuild')); // lower-case hex would give a second topic for one version
    topicError(() => unescapeTopicSegment('1.0.0%41'));
    topicError(() => unescapeTopicSegment('1.0.0%2'));
    topicError(() => unescapeTopicSegment('1.0.0+build'));
  });
});

describe('fleetTopics', () => {
  const t = fleetTopics('lab-1');

  it('builds device topics under kd/v1/{fleet}', () => {
    expect(t.root).toBe('kd/v1/lab-1');
    expect(t.status('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/status');
    expect(t.cmd('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/cmd');
    expect(t.events('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/events');
    expect(t.bench('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/bench');
    expect(t.adapt('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/adapt');
    expect(t.detections('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/detections');
    expect(t.chunkRequests('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/chunks/req');
  });

  it('escapes the version in model topics', () => {
    expect(t.manifest('yolov5n-pets', '1.0.0+build.5')).toBe('kd/v1/lab-1/models/yolov5n-pets/1.0.0%2Bbuild.5/manifest');
    expect(t.chunks('yolov5n-pets', '1.0.0-rc.1')).toBe('kd/v1/lab-1/models/yolov5n-pets/1.0.0-rc.1/chunks');
  });

  it('gives subscription filters', () => {
    expect(t.filters.status).toBe('kd/v1/lab-1/devices/+/status');
    expect(t.filters.events).toBe('kd/v1/lab-1/devices/+/events');
    expect(t.filters.bench).toBe('kd/v1/lab-1/devices/+/bench');
    expect(t.filters.adapt).toBe('kd/v1/lab-1/devices/+/adapt');
    expect(t.filters.detections).toBe('kd/v1/lab-1/devices/+/detections');
    expect(t.filters.chunkRequests).toBe('kd/v1/lab-1/devices/+/chunks/req');
    expect(t.filters.manifests).toBe('kd/v1/lab-1/models/+/+/manifest');
    expect(t.filters.device('jetson-01')).toBe('kd/v1/lab-1/devices/jetson-01/#');
    expect(t.filters.all).toBe('kd/v1/lab-1/#');
  });

  it('refuses ids that would break the topic tree, naming the parameter', () => {
    expect(() => fleetTopics('a/b')).toThrow(/fleet must match/);
    expect(() => fleetTopics('')).toThrow(RangeError);
    expect(() => t.cmd('dev+1')).toThrow(/deviceId must match/);
    expect(() => t.status('#')).toThrow(RangeError);
    expect(() => t.manifest('Yolo', '1.0.0')).toThrow(/name must be a model name/);
    expect(() => t.chunks('yolo', '1.0')).toThrow(/version must be a semver/);
  });
});

describe('parseTopic', () => {
  const t = fleetTopics('lab');

  it('round-trips every topic the builders write', () => {
    expect(parseTopic(t.status('d1'))).toEqual({ fleet: 'lab', kind: 'status', deviceId: 'd1' });
    expect(parseTopic(t.cmd('d1'))).toEqual({ fleet: 'lab', kind: 'cmd', deviceId: 'd1' });
    expect(parseTopic(t.events('d1'))).toEqual({ fleet: 'lab', kind: 'event', deviceId: 'd1' });
    expect(parseTopic(t.bench('d1'))).toEqual({ fleet: 'lab', kind: 'bench', deviceId: 'd1' });
    expect(parseTopic(t.adapt('d1'))).toEqual({ fleet: 'lab', kind: 'adapt', deviceId: 'd1' });
    expect(parseTopic(t.detections('d1'))).toEqual({ fleet: 'lab', kind: 'detections', deviceId: 'd1' });
    expect(parseTopic(t.chunkRequests('d1'))).toEqual({ fleet: 'lab', kind: 'chunk-request', deviceId: 'd1' });
    expect(parseTopic(t.manifest('m', '1.0.0+build.5'))).toEqual({ fleet: 'lab', kind: 'manifest', name: 'm', version: '1.0.0+build.5' });
    expect(parseTopic(t.chunks('m', '2.0.0'), 'lab')).toEqual({ fleet: 'lab', kind: 'chunk', name: 'm', version: '2.0.0' });
    expect(t.chunks('m', '2.0.0+b.1', 'cam-01')).toBe('kd/v1/lab/models/m/2.0.0%2Bb.1/chunks/cam-01');
    expect(parseTopic(t.chunks('m', '2.0.0', 'cam-01'), 'lab')).toEqual({ fleet: 'lab', kind: 'chunk', name: 'm', version: '2.0.0', deviceId: 'cam-01' });
  });

  it('refuses wrong roots, naming the problem', () => {
    expect(topicError(() => parseTopic('foo/v1/lab/devices/d1/status')).message).toMatch(/not under kd\/v1\//);
    expect(topicError(() => parseTopic('kd/v2/lab/devices/d1/status')).message).toMatch(/protocol "v2", not v1/);
    expect(topicError(() => parseTopic('kd/v1')).message).toMatch(/no valid fleet id/);
    expect(topicError(() => parseTopic('/kd/v1/lab/devices/d1/status')).message).toMatch(/not under/);
    expect(topicError(() => parseTopic('kd/v1/other/devices/d1/status', 'lab')).message).toMatch(/fleet "other", not "lab"/);
    expect(topicError(() => parseTopic('kd/v1/lab/things/d1/status')).message).toMatch(/neither a devices\/ nor a models\//);
  });

  it('refuses unknown leaves, bad ids, bad versions and filters', () => {
    expect(topicError(() => parseTopic('kd/v1/lab/devices/d1/reboot')).message).toMatch(/not a device topic/);
    topicError(() => parseTopic('kd/v1/lab/devices/d1/status/extra'));
    topicError(() => parseTopic('kd/v1/lab/devices/d1/chunks'));
    topicError(() => parseTopic('kd/v1/lab/devices//status'));
    topicError(() => parseTopic('kd/v1/lab/devices/+/status'));
    topicError(() => parseTopic('kd/v1/lab/#'));
    expect(topicError(() => parseTopic('kd/v1/lab/models/m/1.0/manifest')).message).toMatch(/no valid semver version/);
    topicError(() => parseTopic('kd/v1/lab/models/M/1.0.0/manifest'));
    topicError(() => parseTopic('kd/v1/lab/models/m/1.0.0%2bx/manifest'));
    topicError(() => parseTopic('kd/v1/lab/models/m/1.0.0/chunks/-3'));
    topicError(() => parseTopic('kd/v1/lab/models/m/1.0.0/chunks/d-1/x'));
  });
});
