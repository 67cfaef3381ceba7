import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  ca: Buffer;
  /** Client certificate and key per device id (CN = the id). */
  clients: Record<string, { cert: Buffer; key: Buffer }>;
}

/**
 * Makes a CA, a server certificate (SAN localhost and 127.0.0.1) and client certificates with openssl, as
 * docker/mosquitto/README.md tells an operator to, into `dir` (ca.crt, server.crt, server.key, {id}.crt, {id}.key).
 */
export async function makePki(dir: string, clientIds: readonly string[] = []): Promise<TestPki> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const at = (name: string): string => join(dir, name);
  await run('openssl', ['req', '-x509', ...ec, '-keyout', at('ca.key'), '-out', at('ca.crt'), '-days', '2', '-subj', '/CN=kd-edge test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const issue = async (name: string, cn: string, ext: string): Promise<void> => {
    await run('openssl', ['req', ...ec, '-keyout', at(`${name}.key`), '-out', at(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await writeFile(at(`${name}.ext`), ext);
    await run('openssl', ['x509', '-req', '-in', at(`${name}.csr`), '-CA', at('ca.crt'), '-CAkey', at('ca.key'), '-CAcreateserial',
      '-out', at(`${name}.crt`), '-days', '2', '-extfile', at(`${name}.ext`)]);
  };
  await issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  const clients: TestPki['clients'] = {};
  for (const id of clientIds) {
    await issue(id, id, 'extendedKeyUsage=clientAuth\n');
    clients[id] = { cert: await readFile(at(`${id}.crt`)), key: await readFile(at(`${id}.key`)) };
  }
  // Mosquitto reads its key after dropping to its own user; these keys are throwaway.
  await chmod(at('server.key'), 0o644);
  return { ca: await readFile(at('ca.crt')), clients };
}
