import { describe, expect, it } from 'vitest';
import { compareSemver, isSemver } from '../src/package/semver.js';
import { adaptedVersion, parseAdaptedVersion } from '../src/protocol/adapt-version.js';
import { MAX_VERSION_LENGTH } from '../src/protocol/ids.js';
import { fleetTopics, parseTopic } from '../src/protocol/topics.js';

// Ids that collide under a naive map of "_" to "-" (or to a letter), and ids at the edges of the alphabet.
const TRICKY_IDS = [
  'cam-01', 'cam_01', 'cam--01', 'cam-u01', 'cam-_01', 'cam_-01', 'cam__01', 'cam-uu01', 'a', 'A', 'a_', 'a-', 'a__', 'a--', 'a-u', 'a_u',
  'u', '0', '0_0', '9-_-_', 'a'.repeat(64), `a${'_'.repeat(20)}`, 'Cam_01', 'cam_01u',
];

describe('adapted version naming', () => {
  it('names the n-th adaptation of a base on a device in build metadata', () => {
    expect(adaptedVersion('1.0.0', 'cam-01', 1)).toBe('1.0.0+adapt.cam-01.1');
    expect(adaptedVersion('1.0.0-rc.1', 'cam-01', 12)).toBe('1.0.0-rc.1+adapt.cam-01.12');
    expect(adaptedVersion('1.0.0+build.5', 'cam-01', 1)).toBe('1.0.0+build.5.adapt.cam-01.1');
    expect(adaptedVersion('1.0.0', 'cam_01', 1)).toBe('1.0.0+adapt.-cam-u01.1');
    expect(parseAdaptedVersion('1.0.0+adapt.cam-01.1')).toEqual({ base: '1.0.0', deviceId: 'cam-01', n: 1 });
  });

  it('round-trips and is injective over tricky device ids, bases and counters', () => {
    const seen = new Map<string, string>();
    for (const base of ['1.0.0', '0.1.2-beta.3', '1.0.0+build.5', '2.0.0+adapt', '1.0.0+x.adapt.cam']) {
      for (const deviceId of TRICKY_IDS) {
        for (const n of [1, 2, 10, Number.MAX_SAFE_INTEGER]) {
          const v = adaptedVersion(base, deviceId, n);
          expect(isSemver(v), v).toBe(true);
          expect(v.length).toBeLessThanOrEqual(MAX_VERSION_LENGTH);
          expect(parseAdaptedVersion(v), v).toEqual({ base, deviceId, n });
          expect(compareSemver(v, base)).toBe(0);
          const key = JSON.stringify([base, deviceId, n]);
          expect(seen.get(v), `${v} named twice`).toBeUndefined();
          seen.set(v, key);
        }
      }
    }
  });

  it('returns undefined for versions that are not adaptations, or spell one two ways', () => {
    for (const v of [
      '1.0.0', '1.0.0+build.5', '1.0.0+adapt.cam-01', '1.0.0+adapt.cam-01.0', '1.0.0+adapt.cam-01.01', '1.0.0+adapt.cam-01.x',
      '1.0.0+adapt.-cam-01.1', // "-" escape must be "--" or "-u"
      '1.0.0+adapt.-cam--01.1', // an escaped form of an id without "_": the plain form is the only spelling
      '1.0.0+adapt.-ucam.1', '1.0.0+adapt.-.1', '1.0.0+adapt.-u.1', '1.0.0+adapt.-cam-u01-.1', // "_" first is not a device id; a trailing lone "-"
      `1.0.0+adapt.${'a'.repeat(65)}.1`, '1.0.0+adapt.cam-01.99999999999999999', 'latest',
    ]) {
      expect(parseAdaptedVersion(v), v).toBeUndefined();
    }
  });

  it('refuses bad arguments, naming them', () => {
    expect(() => adaptedVersion('v1', 'cam-01', 1)).toThrow(/^base must be a semver/);
    expect(() => adaptedVersion('1.0.0+adapt.cam-01.1', 'cam-01', 2)).toThrow(/^base must not be an adapted version; "1\.0\.0\+adapt\.cam-01\.1" adapts "1\.0\.0"/);
    expect(() => adaptedVersion('1.0.0', 'cam/01', 1)).toThrow(/^deviceId must match/);
    expect(() => adaptedVersion('1.0.0', '_cam', 1)).toThrow(/^deviceId must match/);
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 53]) expect(() => adaptedVersion('1.0.0', 'cam-01', n)).toThrow(/^n must be a safe integer >= 1/);
    expect(() => adaptedVersion(`1.0.0+${'b'.repeat(60)}`, `a${'_'.repeat(40)}`, 1)).toThrow(/longer than 128 characters/);
  });

  it('is escaped in model topics and parsed back', () => {
    const t = fleetTopics('lab');
    for (const deviceId of ['cam-01', 'cam_01', 'a-_u']) {
      const version = adaptedVersion('1.2.0+build.5', deviceId, 3);
      const topic = t.manifest('shapes', version);
      expect(topic).not.toMatch(/\+/);
      expect(parseTopic(topic, 'lab')).toEqual({ fleet: 'lab', kind: 'manifest', name: 'shapes', version });
      expect(parseTopic(t.chunks('shapes', version, deviceId), 'lab')).toMatchObject({ version, deviceId });
    }
    expect(t.manifest('shapes', '1.0.0+adapt.cam-01.1')).toBe('kd/v1/lab/models/shapes/1.0.0%2Badapt.cam-01.1/manifest');
  });
});
