import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactCas } from '../src/transfer/fetch-package.js';
import { httpDownload } from '../src/transfer/http-download.js';
import { makePki } from './tls-pki.js';
import { failure } from './transfer-helpers.js';

const BODY = Buffer.from('a package served over https by a privately signed kd-fleet\n'.repeat(100));
const SHA = createHash('sha256').update(BODY).digest('hex');

let dir: string;
let server: Server;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-artifact-ca-'));
  await makePki(dir);
  server = createServer({ key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.crt')) }, (_req, res) => {
    res.writeHead(200, { 'content-length': BODY.length });
    res.end(BODY);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/artifacts/shapes/1.0.0.tar`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe('https package downloads and the broker CA', () => {
  it("trust the broker's CA on top of the system's, not instead of them", async () => {
    expect(await artifactCas(undefined)).toBeUndefined();
    const cas = (await artifactCas(join(dir, 'ca.crt')))!;
    expect(cas).toHaveLength(rootCertificates.length + 1);
    expect(cas.slice(0, -1)).toEqual([...rootCertificates]);
    expect(cas.at(-1)!.toString()).toBe((await readFile(join(dir, 'ca.crt'))).toString());
  });

  it('download from a server signed by the private CA with it, and refuse that server without it', async () => {
    const base = { url, size: BODY.length, sha256: SHA };
    const ok = await httpDownload({ ...base, dest: join(dir, 'with-ca.tar'), ca: await artifactCas(join(dir, 'ca.crt')) });
    expect((await readFile(ok.path)).equals(BODY)).toBe(true);
    const err = await failure(httpDownload({ ...base, dest: join(dir, 'without-ca.tar') }));
    expect(err.message).toMatch(/certificate/i);
    // a certificate that does not verify is not retried (it would not verify within the retry window either)
    expect(err).toMatchObject({ code: 'TRANSFER_TLS' });
  });
});
