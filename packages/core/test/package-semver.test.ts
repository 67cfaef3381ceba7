import { describe, expect, it } from 'vitest';
import { compareSemver, isSemver, parseSemver } from '../src/package/semver.js';

describe('semver', () => {
  it('orders versions as semver.org §11 lists them', () => {
    // semver.org §11: 1.0.0 < 2.0.0 < 2.1.0 < 2.1.1, and the pre-release chain ending in 1.0.0.
    const chains = [
      ['1.0.0', '2.0.0', '2.1.0', '2.1.1'],
      ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0'],
    ];
    for (const chain of chains) {
      for (let i = 0; i < chain.length; i++) {
        for (let j = 0; j < chain.length; j++) {
          expect(compareSemver(chain[i], chain[j]), `${chain[i]} vs ${chain[j]}`).toBe(Math.sign(i - j));
        }
      }
    }
    const shuffled = ['1.0.0', '1.0.0-beta.11', '1.0.0-alpha', '1.0.0-rc.1', '1.0.0-beta.2', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-alpha.1'];
    expect(shuffled.sort(compareSemver)).toEqual(chains[1]);
  });

  it('compares numbers numerically, even past 2^53', () => {
    expect(compareSemver('1.10.0', '1.9.0')).toBe(1);
    expect(compareSemver('1.0.0-10', '1.0.0-9')).toBe(1);
    expect(compareSemver('1.0.0-9', '1.0.0-a')).toBe(-1); // numeric identifiers sort before alphanumeric
    expect(compareSemver('99999999999999999999.0.0', '99999999999999999998.0.0')).toBe(1);
    expect(compareSemver('1.0.0-9007199254740993', '1.0.0-9007199254740992')).toBe(1);
  });

  it('ignores build metadata for precedence (§10)', () => {
    expect(compareSemver('1.0.0+20130313144700', '1.0.0')).toBe(0);
    expect(compareSemver('1.0.0-beta+exp.sha.5114f85', '1.0.0-beta+other')).toBe(0);
    expect(parseSemver('1.0.0-beta+exp.sha.5114f85')).toEqual({
      major: '1', minor: '0', patch: '0', prerelease: ['beta'], build: ['exp', 'sha', '5114f85'],
    });
  });

  it('accepts the valid examples of semver.org and refuses malformed versions', () => {
    for (const v of ['0.0.4', '1.2.3', '10.20.30', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-0.3.7', '1.0.0-x.7.z.92', '1.0.0-x-y-z.--',
      '1.0.0-alpha+001', '1.0.0+20130313144700', '1.0.0+21AF26D3----117B344092BD', '1.0.0-0A.is.legal', '1.0.0+0.build.1-rc.10000aaa-kk-0.1']) {
      expect(isSemver(v), v).toBe(true);
    }
    for (const v of ['1', '1.2', '1.2.3.4', '01.1.1', '1.01.1', '1.1.01', '1.0.0-01', '1.0.0-', '1.0.0+', '1.0.0-alpha..1',
      '1.0.0+meta+meta', 'v1.0.0', '1.0.0-alpha_1', ' 1.0.0', '1.0.0 ', '-1.0.0', '1.0.0-é', '']) {
      expect(isSemver(v), JSON.stringify(v)).toBe(false);
    }
  });

  it('throws a RangeError naming the argument that is not a version', () => {
    expect(() => compareSemver('1.0', '1.0.0')).toThrow(/^a must be a semver/);
    expect(() => compareSemver('1.0.0', 'latest')).toThrow(RangeError);
    expect(() => compareSemver('1.0.0', 'latest')).toThrow(/^b must be/);
  });
});
