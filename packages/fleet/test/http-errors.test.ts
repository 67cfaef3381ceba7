import { request as httpRequest } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { call, startApi, TOKEN, type ApiFixture } from './http-helpers.js';

let fx: ApiFixture;
afterEach(async () => {
  await fx.close();
});

const SPEC = { package: { name: 'pets', version: '1.0.0' }, target: { deviceIds: ['cam-1'] }, waves: { canary: { count: 1 }, percents: [100] } };

/** A POST whose body is sent chunked, without a Content-Length, so only the byte count can catch it. */
function chunkedPost(fx: ApiFixture, path: string, chunks: Buffer[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${fx.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    let i = 0;
    const next = (): void => {
      if (i === chunks.length) return void req.end();
      req.write(chunks[i++], next);
    };
    next();
  });
}

describe('REST API errors', () => {
  it('answers unknown routes 404 and other methods 405 with Allow, and leaves paths outside /api to the next handler', async () => {
    fx = await startApi();
    const unknown = await call(fx, 'GET', '/api/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'FLEET_NOT_FOUND' });
    expect((await call(fx, 'GET', '/api')).status).toBe(404);
    expect((await call(fx, 'GET', '/api/devices/')).status).toBe(404);

    const method = await call(fx, 'DELETE', '/api/devices');
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('GET');
    expect(method.body.error.code).toBe('FLEET_METHOD_NOT_ALLOWED');
    expect((await call(fx, 'GET', '/api/rollouts/r1/abort')).headers.get('allow')).toBe('POST');

    // The fixture answers what the API declines with plain text.
    for (const path of ['/apis', '/dashboard', '/']) {
      const other = await call(fx, 'GET', path);
      expect(other.status).toBe(404);
      expect(other.body).toBe('not the API\n');
    }
    const badEscape = await call(fx, 'GET', '/api/devices/%E0%A4%A');
    expect(badEscape.status).toBe(400);
    expect(badEscape.body.error.code).toBe('FLEET_BAD_REQUEST');
  });

  it('refuses bad JSON and bodies that are not objects, naming the problem', async () => {
    fx = await startApi();
    fx.status('cam-1');
    const bad = await call(fx, 'POST', '/api/rollouts', { raw: '{"package": ', headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('FLEET_BAD_REQUEST');
    expect(bad.body.error.message).toMatch(/not valid JSON: .+/);
    for (const raw of ['[1, 2]', '"text"', 'null', '']) {
      const r = await call(fx, 'POST', '/api/rollouts', { raw });
      expect(r.status).toBe(400);
      expect(r.body.error.message).toContain('must be a JSON object');
    }
    const tags = await call(fx, 'PUT', '/api/devices/cam-1/tags', { raw: '{tags: ["x"]}' });
    expect(tags.status).toBe(400);
    expect(fx.ctx.rollouts.list()).toEqual([]);
  });

  it('refuses an invalid rollout spec with FLEET_ROLLOUT_SPEC naming the field, and starts nothing', async () => {
    fx = await startApi();
    fx.status('cam-1');
    await fx.ctx.pushPackage((await fx.makePackage('pets', '1.0.0')).tar);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...SPEC, waves: { canary: { count: 1 }, percents: [50, 40, 100] } }, 'waves.percents[1]'],
      [{ ...SPEC, gates: { maxP95Ms: -3 } }, 'gates.maxP95Ms'],
      [{ ...SPEC, target: { deviceIds: [] } }, 'target.deviceIds'],
      [{ ...SPEC, colour: 'blue' }, 'colour'],
      [{ ...SPEC, rate: { perMinute: 0 } }, 'rate.perMinute'],
    ];
    for (const [body, field] of cases) {
      const r = await call(fx, 'POST', '/api/rollouts', { body });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'FLEET_ROLLOUT_SPEC', field });
      expect(r.body.error.message).toContain(field);
    }
    const noTargets = await call(fx, 'POST', '/api/rollouts', { body: { ...SPEC, target: { tags: ['nobody'] } } });
    expect(noTargets.status).toBe(400);
    expect(noTargets.body.error.code).toBe('FLEET_ROLLOUT_NO_TARGETS');
    expect(fx.ctx.rollouts.list()).toEqual([]);
  });

  it('answers 413 for a JSON body over the limit, declared or chunked, and keeps serving', async () => {
    fx = await startApi({ api: { jsonLimit: 1024 } });
    fx.status('cam-1');
    const big = { tags: Array.from({ length: 200 }, (_, i) => `tag-${i}`) };
    const declared = await call(fx, 'PUT', '/api/devices/cam-1/tags', { body: big });
    expect(declared.status).toBe(413);
    expect(declared.body.error).toMatchObject({ code: 'FLEET_TOO_LARGE' });
    expect(declared.body.error.message).toContain('1 KiB');

    const chunked = await chunkedPost(fx, '/api/rollouts', Array.from({ length: 8 }, () => Buffer.alloc(512, 0x20)));
    expect(chunked.status).toBe(413);
    expect(chunked.body.error.code).toBe('FLEET_TOO_LARGE');
    // Under the limit, chunked, is fine (and parsed).
    const small = await chunkedPost(fx, '/api/rollouts', [Buffer.from('{"package": {"name": "pets", '), Buffer.from('"version": "9.0.0"}}')]);
    expect(small.status).toBe(404);

    expect(fx.ctx.devices.get('cam-1')!.tags).toEqual([]);
    expect((await call(fx, 'GET', '/api/devices/cam-1')).status).toBe(200);
  });

  it('answers 413 for a package upload over the limit without storing anything, declared or chunked', async () => {
    fx = await startApi({ api: { packageLimit: 4096 } });
    const pkg = await fx.makePackage('pets', '1.0.0');
    const bytes = await readFile(pkg.tar);
    expect(bytes.length).toBeGreaterThan(4096);
    const declared = await call(fx, 'POST', '/api/models', { raw: bytes });
    expect(declared.status).toBe(413);
    expect(declared.body.error.code).toBe('FLEET_TOO_LARGE');
    const chunks = Array.from({ length: Math.ceil(bytes.length / 1024) }, (_, i) => bytes.subarray(i * 1024, (i + 1) * 1024));
    const chunked = await chunkedPost(fx, '/api/models', chunks);
    expect(chunked.status).toBe(413);
    expect(fx.ctx.registry.list()).toEqual([]);
    expect((await readdir(fx.dir)).filter((f) => f.startsWith('kd-fleet-upload-'))).toEqual([]);
    const empty = await call(fx, 'POST', '/api/models', { raw: Buffer.alloc(0) });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toContain('empty');
  });

  it('answers an unexpected failure with a generic 500, logs it, never shows the stack, and keeps serving', async () => {
    fx = await startApi();
    fx.ctx.info = () => {
      throw new Error('cannot open /var/lib/kd-fleet/secret.db');
    };
    const r = await call(fx, 'GET', '/api/info');
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ error: { code: 'FLEET_INTERNAL', message: expect.any(String) } });
    expect(JSON.stringify(r.body)).not.toContain('secret.db');
    expect(JSON.stringify(r.body)).not.toMatch(/\bat .+:\d+:\d+/);
    const logged = fx.logger.lines.filter((l) => l.level === 'error');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.message).toContain('GET /api/info');
    expect(logged[0]!.message).toContain('secret.db');
    expect(logged[0]!.message).toMatch(/\bat .+:\d+:\d+/);
    expect((await call(fx, 'GET', '/api/devices')).status).toBe(200);
  });
});
