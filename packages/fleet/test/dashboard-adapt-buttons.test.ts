// The dashboard's Pull and Promote buttons (issue 16) in a real Chromium: a real FleetServer (embedded aedes, SQLite,
// API, dashboard), MQTT clients playing devices that report their device key, their jobs and their answers, and real
// device-signed packages uploaded with the agent's own uploadPackage. The page must follow each pull live, show the
// server's refusals where the operator clicked, and promote a pulled package.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fleetTopics, generateKeyPair, makeAdapt, makeEvent, makeStatus, parseMessage, writeKeyPair, type AdaptFields, type CommandMessage, type KeyPair,
} from '@kd-edge/core';
import mqtt, { type MqttClient } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadPackage } from '../../edge-agent/src/adapt/adapt-upload.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { webHandlers } from '../src/server/web-handlers.js';
import { waitFor } from './http-helpers.js';
import { makeTestPackage, tempDir, type TestPackage } from './registry-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard adapt buttons skipped: ${CHROMIUM} is missing (apt-get install chromium)`);

const FLEET = 'dash-pull';
const TOKEN = 'dash-pull-token';
const topics = fleetTopics(FLEET);
const BASE = { name: 'shapes', version: '1.0.0' };
const V1 = '1.0.0+adapt.cam-01.1';
const V2 = '1.0.0+adapt.cam-01.2';
const keys = { fleet: generateKeyPair(), other: generateKeyPair(), cam1: generateKeyPair(), cam2: generateKeyPair(), stranger: generateKeyPair() };

interface Device {
  id: string;
  commands: CommandMessage[];
  job(jobId: string, fields: Partial<AdaptFields>): Promise<void>;
  answer(cmd: CommandMessage, state: 'accepted' | 'failed', extra?: { code: string; message: string }): Promise<void>;
}

let root: string;
let cleanup: () => Promise<void>;
const servers: FleetServer[] = [];
const clients: MqttClient[] = [];
let browser: Browser | undefined;
let page: Page;
const pkgs: Record<string, TestPackage> = {};

const byTestId = (id: string): string => `[data-testid="${id}"]`;
const jobRow = (jobId: string): string => `${byTestId('adapt-job')}[data-job-id="${jobId}"]`;
const modelRow = (version: string): string => `${byTestId('model-row')}[data-version="${version}"]`;

async function startFleet(name: string, signKey: string): Promise<FleetServer> {
  const server = await FleetServer.start({
    dataDir: join(root, name), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
    trustedKeys: [join(root, 'fleet.pub')], signKey, tickMs: 100_000, handlers: webHandlers(),
  });
  servers.push(server);
  return server;
}

/** A device on `server`'s broker: its retained status (with its device key), its jobs, its answers to commands. */
async function device(server: FleetServer, id: string, key: KeyPair, online = true): Promise<Device> {
  const client = await mqtt.connectAsync(server.mqttUrl, { clientId: id, protocolVersion: 4, reconnectPeriod: 0 });
  clients.push(client);
  const d: Device = {
    id, commands: [],
    async job(jobId, fields) {
      await client.publishAsync(topics.adapt(id), JSON.stringify(makeAdapt({ deviceId: id, jobId, commandId: null, base: BASE, ...fields } as AdaptFields)), { qos: 1, retain: true });
      await waitFor(`job ${jobId}`, () => server.context.adaptJobs.get(id, jobId)?.state === fields.state);
    },
    async answer(cmd, state, extra) {
      await client.publishAsync(topics.events(id), JSON.stringify(makeEvent({ deviceId: id, commandId: cmd.id, command: cmd.command, state, ...extra })), { qos: 1 });
    },
  };
  client.on('message', (topic, payload) => {
    if (topic === topics.cmd(id)) d.commands.push(parseMessage('cmd', payload));
  });
  await client.subscribeAsync(topics.cmd(id), { qos: 1 });
  const status = makeStatus({
    deviceId: id, online, agentVersion: '0.2.0', activeModel: { ...BASE, sha256: 'b'.repeat(64) }, deviceKey: { keyId: key.keyId, publicKeyPem: key.publicKeyPem },
  });
  await client.publishAsync(topics.status(id), JSON.stringify(status), { qos: 1, retain: true });
  await waitFor(`${id} pinned`, () => server.context.devices.get(id)?.deviceKey?.keyId === key.keyId);
  return d;
}

/** The adapt-upload command the device received after `before` commands. */
async function uploadCommand(d: Device, before: number): Promise<CommandMessage & { command: 'adapt-upload' }> {
  await waitFor(`the adapt-upload command to ${d.id}`, () => d.commands.length > before);
  const cmd = d.commands[d.commands.length - 1]!;
  expect(cmd.command).toBe('adapt-upload');
  return cmd as CommandMessage & { command: 'adapt-upload' };
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
}

async function unlock(): Promise<void> {
  await page.fill(byTestId('token-input'), TOKEN);
  await page.click(byTestId('token-save'));
  await expect.poll(() => page.getAttribute(byTestId('auth-state'), 'data-state')).toBe('unlocked');
}

beforeAll(async () => {
  if (!hasChromium) return;
  ({ dir: root, cleanup } = await tempDir('kd-dash-pull-'));
  await mkdir(ARTIFACTS, { recursive: true });
  await writeKeyPair(keys.fleet, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
  await writeKeyPair(keys.other, { privateKeyPath: join(root, 'other.key'), publicKeyPath: join(root, 'other.pub') });
  const p = join(root, 'pkgs');
  [pkgs.base, pkgs.v1, pkgs.stranger, pkgs.b1] = await Promise.all([
    makeTestPackage(join(p, 'base'), 'shapes', '1.0.0', keys.fleet.privateKeyPem, 8 * 1024),
    makeTestPackage(join(p, 'v1'), 'shapes', V1, keys.cam1.privateKeyPem, 8 * 1024),
    makeTestPackage(join(p, 'stranger'), 'shapes', V2, keys.stranger.privateKeyPem, 8 * 1024),
    makeTestPackage(join(p, 'b1'), 'shapes', '1.0.0+adapt.cam-02.1', keys.cam2.privateKeyPem, 8 * 1024),
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  page.setDefaultTimeout(30_000);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  for (const c of clients) await c.endAsync(true);
  for (const s of servers) await s.close();
  await cleanup?.();
}, 60_000);

describe.skipIf(!hasChromium)('the dashboard\'s Pull and Promote buttons', () => {
  it('pulls a job kept for review, following it live; shows refusals in place; promotes the pulled package', async () => {
    const server = await startFleet('fleet', join(root, 'fleet.key'));
    await server.context.pushPackage(pkgs.base!.tar);
    const cam1 = await device(server, 'cam-01', keys.cam1);
    const cam2 = await device(server, 'cam-02', keys.cam2, false);
    await cam1.job('job-review', { state: 'succeeded', accepted: true, activated: false, version: V1 });
    await cam1.job('job-running', { state: 'training', epoch: 1, epochs: 3 });
    await cam1.job('job-active', { state: 'succeeded', accepted: true, activated: true, version: V2 });
    await cam2.job('job-offline', { state: 'succeeded', accepted: true, activated: false, version: '1.0.0+adapt.cam-02.1' });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(server.httpUrl);
    await page.waitForSelector('body[data-ready="true"]');

    // Read-only: the buttons are there but disabled; only succeeded jobs have one.
    const review = page.locator(jobRow('job-review'));
    await expect.poll(() => review.locator(byTestId('adapt-pull')).isDisabled()).toBe(true);
    expect(await page.locator(`${jobRow('job-running')} ${byTestId('adapt-pull')}`).count()).toBe(0);
    expect(await page.getAttribute(modelRow('1.0.0'), 'data-state')).toBe('pushed');
    await unlock();

    // Pull: the device gets the signed adapt-upload; the row follows the fleet's record live: requested, uploading, pulled.
    let before = cam1.commands.length;
    await review.locator(byTestId('adapt-pull')).click();
    const cmd = await uploadCommand(cam1, before);
    expect(cmd.jobId).toBe('job-review');
    await expect.poll(() => review.locator(byTestId('adapt-pull-state')).getAttribute('data-pull')).toBe('requested');
    expect(await review.locator(byTestId('adapt-pull')).count()).toBe(0);
    await cam1.answer(cmd, 'accepted');
    await expect.poll(() => review.locator(byTestId('adapt-pull-state')).textContent()).toBe('uploading…');
    expect((await uploadPackage(pkgs.v1!.tar, cmd.url, { retries: 0 })).status).toBe(201);
    await expect.poll(() => review.locator(byTestId('adapt-pull-state')).textContent()).toBe('pulled, not promoted');
    // The models view shows it, signed by the device, with a Promote button; the rollout form does not offer it.
    const adapted = page.locator(modelRow(V1));
    await expect.poll(() => adapted.getAttribute('data-state')).toBe('pulled');
    expect(await adapted.locator('[data-col="state"]').textContent()).toBe('adapted on cam-01 (job job-review), not promoted: signed by the device');
    expect(await adapted.locator('[data-col="key"]').textContent()).toBe(keys.cam1.keyId);
    expect(await page.locator(`${byTestId('rollout-package')} option`).evaluateAll((els) => els.map((e) => e.getAttribute('value')))).toEqual(['shapes@1.0.0']);

    // An upload the fleet refuses (signed by another key than the device's): the reason in the row, and Pull again.
    const active = page.locator(jobRow('job-active'));
    before = cam1.commands.length;
    await active.locator(byTestId('adapt-pull')).click();
    const cmd2 = await uploadCommand(cam1, before);
    const refused = await uploadPackage(pkgs.stranger!.tar, cmd2.url, { retries: 0 }).then(() => undefined, (e: Error) => e);
    expect(refused?.message).toMatch(/FLEET_PACKAGE_REFUSED/);
    // The device reports its own failure afterwards; the fleet's reason, the more precise, stays.
    await cam1.answer(cmd2, 'failed', { code: 'TRANSFER_HTTP_STATUS', message: 'HTTP 400' });
    await expect.poll(() => active.locator(byTestId('adapt-pull-state')).getAttribute('data-pull')).toBe('failed');
    await waitFor('the device\'s answer', () => server.context.devices.get('cam-01')?.lastEvent?.commandId === cmd2.id);
    expect(await active.locator(byTestId('adapt-pull-state')).textContent()).toMatch(/^pull failed: FLEET_PACKAGE_REFUSED: .*PACKAGE_KEY_UNTRUSTED/);
    expect(await active.locator(byTestId('adapt-pull')).isEnabled()).toBe(true);
    // Pulled again, the device itself fails (its package left the store): its own code is the reason.
    before = cam1.commands.length;
    await active.locator(byTestId('adapt-pull')).click();
    const cmd3 = await uploadCommand(cam1, before);
    expect(cmd3.id).not.toBe(cmd2.id);
    await expect.poll(() => active.locator(byTestId('adapt-pull-state')).getAttribute('data-pull')).toBe('requested');
    await cam1.answer(cmd3, 'failed', { code: 'AGENT_ADAPT_NO_PACKAGE', message: 'its package is no longer in the model store' });
    await expect.poll(() => active.locator(byTestId('adapt-pull-state')).textContent())
      .toBe('pull failed: AGENT_ADAPT_NO_PACKAGE: its package is no longer in the model store');

    // A device that is offline: the API's refusal is shown where the operator clicked, and nothing is sent.
    const offline = page.locator(jobRow('job-offline'));
    await offline.locator(byTestId('adapt-pull')).click();
    await expect.poll(() => offline.locator(byTestId('adapt-pull-error')).textContent()).toMatch(/^409 FLEET_DEVICE_OFFLINE: cam-02 is offline/);
    expect(await offline.locator(byTestId('adapt-pull')).isEnabled()).toBe(true);
    expect(cam2.commands).toEqual([]);
    await shot('8-pull-refusals');

    // Promote: re-signed with the fleet key; the row, the job and the rollout form follow.
    await adapted.locator(byTestId('model-promote')).click();
    await expect.poll(() => adapted.getAttribute('data-state')).toBe('promoted');
    expect(await adapted.locator('[data-col="key"]').textContent()).toBe(keys.fleet.keyId);
    expect(await adapted.locator(byTestId('model-promote')).count()).toBe(0);
    await expect.poll(() => review.locator(byTestId('adapt-pull-state')).textContent()).toBe('pulled, promoted');
    expect(server.context.registry.get('shapes', V1)).toMatchObject({ keyId: keys.fleet.keyId, promotedAt: expect.any(Number) });
    await page.click(byTestId('new-rollout-toggle'));
    await expect.poll(() => page.locator(`${byTestId('rollout-package')} option`).evaluateAll((els) => els.map((e) => e.getAttribute('value')).sort()))
      .toEqual(['shapes@1.0.0', `shapes@${V1}`]);
    await page.click(byTestId('rollout-cancel'));
    await shot('9-promoted');
    expect(errors).toEqual([]);
  });

  it('shows a refused promotion in the package\'s row', async () => {
    // A server whose --sign-key is not among its --trust keys cannot promote (FLEET_PROMOTE_NO_KEY).
    const server = await startFleet('fleet-no-key', join(root, 'other.key'));
    const cam2 = await device(server, 'cam-02', keys.cam2);
    await cam2.job('job-b', { state: 'succeeded', accepted: true, activated: false, version: '1.0.0+adapt.cam-02.1' });
    const res = await fetch(`${server.httpUrl}/api/devices/cam-02/adapt-jobs/job-b/pull`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(202);
    const cmd = await uploadCommand(cam2, 0);
    expect((await uploadPackage(pkgs.b1!.tar, cmd.url, { retries: 0 })).status).toBe(201);

    await page.goto(server.httpUrl);
    await page.waitForSelector('body[data-ready="true"]');
    await unlock();
    const row = page.locator(modelRow('1.0.0+adapt.cam-02.1'));
    await row.locator(byTestId('model-promote')).click();
    await expect.poll(() => row.locator(byTestId('model-error')).textContent()).toMatch(/^409 FLEET_PROMOTE_NO_KEY: the --sign-key \(key [0-9a-f]+\) is not among the --trust keys/);
    expect(await row.getAttribute('data-state')).toBe('pulled');
    expect(await row.locator(byTestId('model-promote')).textContent()).toBe('Promote');
    expect(await row.locator(byTestId('model-promote')).isEnabled()).toBe(true);
    await shot('10-promote-refused');
  });
});
