// The dashboard end to end: the real FleetServer with its API and dashboard, real kd-agents (FleetSimulator), a real
// signed package, and a real Chromium clicking through the page. Screenshots land in test/artifacts/.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { adaptedVersion, fleetTopics, generateKeyPair, makeAdapt, makeStatus, writeKeyPair, type KeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveDashboard } from '../src/dashboard/serve-dashboard.js';
import { createApiHandler, type ApiHandler } from '../src/http/api-handler.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { makeTeacherPackage } from './adapt-helpers.js';
import { makeDetectorPackage, type DetectorPackage } from './simulator-helpers.js';
import { makeTrtPackage } from './trt-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const FLEET = 'dash';
const TOKEN = 'dashboard-e2e-token';
const SIM_DEVICES = 4;
// Devices that exist only as retained statuses: enough rows to show the table renders only what is in sight.
const PAPER_DEVICES = 1000;

const hasChromium = existsSync(CHROMIUM);
/** A simulated device's model cell on shapes@1.0.0: the version, then the file, precision and path that serve it. */
const SERVED_V1 = 'shapes@1.0.0 · model.onnx · fp32 · onnxruntime';
if (!hasChromium) console.warn(`dashboard e2e skipped: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`);

let root: string;
let server: FleetServer;
let api: ApiHandler | undefined;
let sim: FleetSimulator | undefined;
let browser: Browser | undefined;
let page: Page;
let v1: DetectorPackage;
let v2: DetectorPackage;
let key: KeyPair;
const simIds: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
}

const byTestId = (id: string) => `[data-testid="${id}"]`;

beforeAll(async () => {
  if (!hasChromium) return;
  await mkdir(ARTIFACTS, { recursive: true });
  root = await mkdtemp(join(tmpdir(), 'kd-dash-e2e-'));
  key = generateKeyPair();
  const pub = join(root, 'fleet.pub');
  const priv = join(root, 'fleet.key');
  await writeKeyPair(key, { privateKeyPath: priv, publicKeyPath: pub });
  [v1, v2] = await Promise.all([
    makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', key.privateKeyPem, 7),
    makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.1.0', key.privateKeyPem, 8),
  ]);
  server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
    trustedKeys: [pub], signKey: priv, tickMs: 200,
    handlers: (ctx) => {
      api = createApiHandler(ctx);
      return [api, (req, res) => serveDashboard(req, res)];
    },
  });
  await server.context.pushPackage(v1.tar);
  await server.context.pushPackage(v2.tar);

  // The paper devices: retained statuses, half online, a third with a model, none of them tagged `lab`.
  const client = await mqtt.connectAsync(server.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 });
  const topics = fleetTopics(FLEET);
  for (let i = 0; i < PAPER_DEVICES; i++) {
    const id = `paper-${String(i).padStart(4, '0')}`;
    const status = makeStatus({
      deviceId: id, online: i % 2 === 0, agentVersion: '0.1.0',
      ...(i % 3 === 0 ? { activeModel: { name: 'shapes', version: '0.9.0', sha256: v1.sha256 } } : {}),
    });
    client.publish(topics.status(id), JSON.stringify(status), { qos: 0, retain: true });
  }
  await client.endAsync();

  sim = await FleetSimulator.start({
    devices: SIM_DEVICES, profile: 'mix', broker: server.mqttUrl, fleet: FLEET, keys: [pub], root: join(root, 'devices'),
    staggerMs: 0, seed: 3, iterations: 5, warmup: 1,
  });
  simIds.push(...sim.devices.map((d) => d.deviceId));
  // wait until the fleet knows them, then tag them so rollouts target only real agents
  for (let i = 0; i < 200 && server.context.devices.list({ online: true }).filter((d) => simIds.includes(d.id)).length < SIM_DEVICES; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const id of simIds) server.context.devices.setTags(id, ['lab', id.includes('nano') ? 'nano' : 'big']);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  page.setDefaultTimeout(30_000);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await sim?.stop();
  api?.close();
  await server?.close();
  if (root) await rm(root, { recursive: true, force: true });
}, 60_000);

describe.skipIf(!hasChromium)('dashboard in Chromium against a real fleet', () => {
  it('shows the fleet read-only, 1,000+ devices with only the rows in sight in the DOM', async () => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(server.httpUrl);
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => page.textContent(byTestId('fleet-name'))).toBe(FLEET);
    await expect.poll(() => page.getAttribute(byTestId('device-count'), 'data-total')).toBe(String(PAPER_DEVICES + SIM_DEVICES));
    expect(await page.getAttribute(byTestId('auth-state'), 'data-state')).toBe('read-only');
    // without the token: no new-rollout button, controls disabled
    expect(await page.isVisible(byTestId('new-rollout-toggle'))).toBe(false);
    expect(await page.isDisabled(byTestId('rollout-start'))).toBe(true);
    const rows = await page.locator(`${byTestId('device-row')}:visible`).count();
    expect(rows).toBeGreaterThan(5);
    expect(rows).toBeLessThan(80);
    // scrolled to the end, the last device (by id) is drawn, still with a small DOM
    await page.locator(byTestId('device-viewport')).evaluate((el) => { el.scrollTop = el.scrollHeight; });
    const lastId = [...simIds].sort().at(-1)!;
    await page.waitForSelector(`${byTestId('device-row')}[data-id="${lastId}"]`);
    expect(await page.locator(byTestId('device-row')).count()).toBeLessThan(80);
    await shot('1-devices-read-only');

    // filters: the lab tag leaves the simulated agents, all online
    await page.selectOption(byTestId('filter-tag'), 'lab');
    await expect.poll(() => page.getAttribute(byTestId('device-count'), 'data-shown')).toBe(String(SIM_DEVICES));
    await expect.poll(() => page.locator(`${byTestId('device-row')}:visible`).evaluateAll((els) => els.map((e) => e.getAttribute('data-id')!).sort()))
      .toEqual([...simIds].sort());
    await page.selectOption(byTestId('filter-online'), 'false');
    await expect.poll(() => page.getAttribute(byTestId('device-count'), 'data-shown')).toBe('0');
    await page.selectOption(byTestId('filter-online'), '');
    // sorting by id descending puts the last id first
    await page.click(byTestId('sort-id'));
    await expect.poll(() => page.locator(`${byTestId('device-row')}:visible`).first().getAttribute('data-id')).toBe(lastId);
    expect(errors).toEqual([]);
  });

  it('refuses a wrong token clearly and unlocks with the right one', async () => {
    await page.fill(byTestId('token-input'), 'wrong-token');
    await page.click(byTestId('token-save'));
    await expect.poll(() => page.getAttribute(byTestId('auth-state'), 'data-state')).toBe('refused');
    expect(await page.textContent(byTestId('banner'))).toContain('401');
    await page.fill(byTestId('token-input'), TOKEN);
    await page.click(byTestId('token-save'));
    await expect.poll(() => page.getAttribute(byTestId('auth-state'), 'data-state')).toBe('unlocked');
    expect(await page.isVisible(byTestId('banner'))).toBe(false);
    expect(await page.isVisible(byTestId('new-rollout-toggle'))).toBe(true);
  });

  it('runs a rollout started by clicking to completion, and the devices show the model and their latency', async () => {
    await page.click(byTestId('new-rollout-toggle'));
    await page.waitForSelector(`${byTestId('rollout-package')} option[value="shapes@1.0.0"]`, { state: 'attached' });
    await page.selectOption(byTestId('rollout-package'), 'shapes@1.0.0');
    await page.check(byTestId('rollout-target-tags-mode'));
    await page.fill(byTestId('rollout-target-tags'), 'lab');
    await page.fill(byTestId('rollout-canary'), '1');
    await page.fill(byTestId('rollout-percents'), '50, 100');
    await page.fill(byTestId('rollout-rate'), '600');
    await page.click(byTestId('rollout-start'));
    await page.waitForSelector(`${byTestId('rollout-detail')}:not([hidden])`);
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-state'), { timeout: 45_000 }).toBe('succeeded');
    // canary, 50 %, 100 %: every wave full and green
    const waves = await page.locator(byTestId('wave-counts')).evaluateAll((els) => els.map((e) => ({
      ok: Number(e.getAttribute('data-succeeded')), failed: Number(e.getAttribute('data-failed')), total: Number(e.getAttribute('data-total')),
    })));
    expect(waves.length).toBe(3);
    expect(waves.reduce((n, w) => n + w.ok, 0)).toBe(SIM_DEVICES);
    for (const w of waves) expect(w).toEqual({ ok: w.total, failed: 0, total: w.total });
    expect(await page.locator(byTestId('rollout-failure')).count()).toBe(0);
    // the table follows: every lab device runs shapes@1.0.0, served from the file its status names (issue 17), and has latency figures
    await expect.poll(() => page.locator(`${byTestId('device-row')}:visible [data-col="model"]`).allTextContents())
      .toEqual(Array(SIM_DEVICES).fill(SERVED_V1));
    await expect.poll(async () => (await page.locator(`${byTestId('device-row')}:visible [data-col="p95"]`).allTextContents()).every((t) => Number(t) > 0)).toBe(true);
    // Jetson profiles report tegrastats: power and temperature; the x86 one does not
    const jetson = simIds.find((id) => !id.includes('x86'))!;
    await expect.poll(async () => Number(await page.textContent(`${byTestId('device-row')}[data-id="${jetson}"] [data-col="powerW"]`))).toBeGreaterThan(0);
    expect(Number(await page.textContent(`${byTestId('device-row')}[data-id="${jetson}"] [data-col="tempC"]`))).toBeGreaterThan(0);
    const x86 = simIds.find((id) => id.includes('x86'))!;
    expect(await page.textContent(`${byTestId('device-row')}[data-id="${x86}"] [data-col="powerW"]`)).toBe('–');
    await shot('2-rollout-succeeded');

    // a device's latency history as a chart
    await page.click(`${byTestId('device-row')}[data-id="${simIds[0]}"]`);
    await page.waitForSelector(`${byTestId('device-detail')}:not([hidden]) ${byTestId('latency-p95')}`, { state: 'attached' });
    expect(Number(await page.getAttribute(byTestId('latency-chart'), 'data-points'))).toBeGreaterThanOrEqual(1);
    expect(await page.getAttribute(byTestId('latency-p50'), 'points')).toMatch(/^[\d.]+,[\d.]+/);
    await shot('3-latency-chart');
  });

  it('an abort after the canary rolls the canary back, and the page shows the rollback', async () => {
    await page.click(byTestId('new-rollout-toggle'));
    await page.waitForSelector(`${byTestId('rollout-package')} option[value="shapes@1.1.0"]`, { state: 'attached' });
    await page.selectOption(byTestId('rollout-package'), 'shapes@1.1.0');
    await page.check(byTestId('rollout-target-tags-mode'));
    await page.fill(byTestId('rollout-target-tags'), 'lab');
    await page.fill(byTestId('rollout-canary'), '1');
    await page.fill(byTestId('rollout-percents'), '100');
    await page.selectOption(byTestId('rollout-approval'), 'manual');
    await page.click(byTestId('rollout-start'));
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-state'), { timeout: 30_000 }).toBe('awaiting_approval');
    expect(await page.isEnabled(byTestId('rollout-approve'))).toBe(true);
    await shot('4-awaiting-approval');
    await page.click(byTestId('rollout-abort'));
    expect(await page.getAttribute(byTestId('rollout-abort'), 'data-armed')).toBe('true');
    await page.click(byTestId('rollout-abort'));
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-state')).toBe('aborted');
    expect(await page.textContent(byTestId('rollout-reason'))).toContain('aborted');
    // the canary is told to roll back, and says it did
    const failure = page.locator(byTestId('rollout-failure')).first();
    await expect.poll(() => failure.locator(byTestId('rollback-state')).getAttribute('data-rollback'), { timeout: 30_000 }).toBe('rolled_back');
    expect(await failure.getAttribute('data-state')).toBe('rolled_back');
    const canary = (await failure.getAttribute('data-device-id'))!;
    await expect.poll(() => page.textContent(`${byTestId('device-row')}[data-id="${canary}"] [data-col="model"]`)).toBe(SERVED_V1);
    await shot('5-aborted-rolled-back');
  });

  it('a gate no device can pass fails the canary with its reason and aborts the rollout', async () => {
    await page.click(byTestId('new-rollout-toggle'));
    await page.selectOption(byTestId('rollout-package'), 'shapes@1.1.0');
    await page.check(byTestId('rollout-target-tags-mode'));
    await page.fill(byTestId('rollout-target-tags'), 'lab');
    await page.fill(byTestId('rollout-canary'), '1');
    await page.fill(byTestId('rollout-percents'), '100');
    await page.selectOption(byTestId('rollout-approval'), 'auto');
    await page.fill(byTestId('rollout-max-p95'), '0.001');
    // the previous rollout was aborted too: wait for the detail to show the new one before reading its state
    const previous = await page.getAttribute(byTestId('rollout-detail'), 'data-rollout-id');
    await page.click(byTestId('rollout-start'));
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-rollout-id'), { timeout: 30_000 }).not.toBe(previous);
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-state'), { timeout: 30_000 }).toBe('aborted');
    const failure = page.locator(byTestId('rollout-failure')).first();
    await expect.poll(() => failure.getAttribute('data-code')).toMatch(/GATE_P95|P95/);
    expect((await failure.textContent())!.length).toBeGreaterThan(10);
    const gate = page.locator(byTestId('gate-result')).first();
    expect(await gate.getAttribute('data-gate')).toBe('GATE_P95');
    expect(Number(await gate.getAttribute('data-failed'))).toBe(1);
    expect(await page.textContent(byTestId('rollout-reason'))).not.toBe('');
    // the table shows the canary's latest report, the one the gate judged (the chart's last point)
    const canary = (await failure.getAttribute('data-device-id'))!;
    const lastP95 = (await page.textContent(byTestId('latency-legend')))!.match(/p95 ([\d.]+) ms/)![1];
    await expect.poll(() => page.textContent(`${byTestId('device-row')}[data-id="${canary}"] [data-col="p95"]`)).toBe(lastP95);
    await shot('6-gate-failed');
    // the list holds all three with their final states
    const states = await page.locator(byTestId('rollout-item')).evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
    expect(states).toEqual(['aborted', 'aborted', 'succeeded']);
  });

  it('shows adaptation jobs per device live, adapted versions in the table, and keeps teachers out of the rollout form', async () => {
    const teacher = await makeTeacherPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', key.privateKeyPem);
    await server.context.pushPackage(teacher.tar);
    await page.click(byTestId('new-rollout-toggle'));
    await page.waitForSelector(`${byTestId('rollout-package')} option[value="shapes@1.1.0"]`, { state: 'attached' });
    expect(await page.locator(`${byTestId('rollout-package')} option`).evaluateAll((els) => els.map((e) => e.getAttribute('value'))))
      .toEqual(['shapes@1.1.0', 'shapes@1.0.0']);
    await page.click(byTestId('rollout-cancel'));

    const client = await mqtt.connectAsync(server.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      const topics = fleetTopics(FLEET);
      const id = 'paper-0003';
      const job = { deviceId: id, jobId: 'job-e2e', commandId: null, base: { name: 'shapes', version: '1.0.0' }, teacher: { name: 'shapes-teacher', version: '1.0.0' } };
      const publish = (m: object): Promise<unknown> => client.publishAsync(topics.adapt(id), JSON.stringify(m), { qos: 1, retain: true });
      await publish(makeAdapt({ ...job, state: 'training', epoch: 1, epochs: 2, losses: { box: 0.05, kd: 0.02 }, ts: '2026-05-01T12:00:01Z' }));
      const row = page.locator(`${byTestId('adapt-job')}[data-job-id="job-e2e"]`);
      await expect.poll(() => row.getAttribute('data-state')).toBe('training');
      expect(await row.locator('[data-col="progress"]').textContent()).toBe('1/2');
      expect(await row.locator('[data-col="losses"]').textContent()).toBe('box 0.0500, kd 0.0200');
      expect(await page.isVisible(`${byTestId('adapt-device')}[data-device-id="${id}"]`)).toBe(true);
      // The token is entered: the running job's cancel button sends adapt-cancel to the device.
      const cmds: Array<Record<string, unknown>> = [];
      client.on('message', (topic, payload) => topic === topics.cmd(id) && cmds.push(JSON.parse(payload.toString()) as Record<string, unknown>));
      await client.subscribeAsync(topics.cmd(id), { qos: 1 });
      await row.locator(byTestId('adapt-cancel')).click();
      await expect.poll(() => cmds.map((c) => `${String(c.command)} ${String(c.jobId)}`)).toEqual(['adapt-cancel job-e2e']);

      const version = adaptedVersion('1.0.0', id, 1);
      await publish(makeAdapt({
        ...job, state: 'succeeded', epoch: 2, epochs: 2, version, accepted: true, activated: true, ts: '2026-05-01T12:00:02Z',
        holdout: { images: 4, before: { map50: 0.5, map: 0.28 }, after: { map50: 0.6, map: 0.35 } }, reasons: ['hold-out mAP50-95 +0.070 ≥ min-gain 0.010'],
      }));
      await expect.poll(() => row.getAttribute('data-state')).toBe('succeeded');
      expect(await row.locator('[data-col="holdout"]').textContent()).toBe('0.280 → 0.350');
      expect(await row.locator('[data-col="version"]').textContent()).toBe('1.0.0+adapt.paper-0003.1 (active)');
      expect(await row.locator('[data-col="result"]').textContent()).toContain('accepted');
      expect(await row.locator(byTestId('adapt-cancel')).count()).toBe(0);

      // The device then reports the adapted version as its active model: the table shows it, "+" and all.
      await client.publishAsync(topics.status(id), JSON.stringify(makeStatus({
        deviceId: id, online: true, agentVersion: '0.1.0', activeModel: { name: 'shapes', version, sha256: v1.sha256 },
      })), { qos: 1, retain: true });
      // The first test left the tag filter on `lab`; this device has no tags.
      await page.selectOption(byTestId('filter-tag'), '');
      await page.fill(byTestId('filter-text'), id);
      await expect.poll(() => page.textContent(`${byTestId('device-row')}[data-id="${id}"] [data-col="model"]`)).toBe(`shapes@${version}`);
      await page.locator(byTestId('adapt-jobs')).scrollIntoViewIfNeeded();
      await shot('7-adaptation-jobs');
    } finally {
      await client.endAsync();
    }
  });

  it('shows a rollout\'s warnings as they come live, in the list and in the rollout\'s detail, through an abort', async () => {
    // A device on TensorRT 8.2.1 (a retained status, no agent) and a package with a calibration cache for 10.3.0 only.
    const id = 'paper-0002';
    const client = await mqtt.connectAsync(server.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await client.publishAsync(fleetTopics(FLEET).status(id), JSON.stringify(makeStatus({
        deviceId: id, online: true, agentVersion: '0.2.0', activeModel: null, freeDiskMb: 1000,
        hardware: {
          arch: 'arm64', platform: 'linux', cpus: 4, memTotalMb: 4096, tensorrt: '8.2.1',
          jetson: { model: 'NVIDIA Jetson Nano Developer Kit', l4t: '32.7.1' }, ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] },
        },
      })), { qos: 1, retain: true });
    } finally {
      await client.endAsync();
    }
    await expect.poll(() => server.context.devices.get(id)?.status?.hardware?.tensorrt).toBe('8.2.1');
    await server.context.pushPackage(await makeTrtPackage(join(root, 'pkgs'), 'shapes', '2.0.0', ['10.3.0'], key.privateKeyPem));

    // Started through the API, not the page: the list learns of it, and of its warning, from the live stream alone.
    const res = await fetch(`${server.httpUrl}/api/rollouts`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ package: { name: 'shapes', version: '2.0.0' }, target: { deviceIds: [id] }, waves: { canary: { count: 1 }, percents: [100] } }),
    });
    expect(res.status).toBe(201);
    const started = await res.json() as { id: string; warnings: Array<{ code: string; message: string }> };
    expect(started.warnings.map((w) => w.code)).toEqual(['FLEET_TRT_NO_CACHE']);
    const line = `warning FLEET_TRT_NO_CACHE: ${started.warnings[0]!.message}`;
    const item = page.locator(`${byTestId('rollout-item')}[data-rollout-id="${started.id}"]`);
    await expect.poll(() => item.locator(byTestId('rollout-item-warnings')).textContent()).toBe('warning FLEET_TRT_NO_CACHE');
    // Rollouts without warnings show none.
    expect(await page.locator(byTestId('rollout-item-warnings')).count()).toBe(1);

    await item.click();
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-rollout-id')).toBe(started.id);
    const shown = page.locator(`${byTestId('rollout-warnings')}:visible ${byTestId('rollout-warning')}`);
    await expect.poll(() => shown.allTextContents()).toEqual([line]);
    expect(await shown.getAttribute('data-code')).toBe('FLEET_TRT_NO_CACHE');
    expect(line).toContain(`(${id})`);
    await page.locator(byTestId('rollout-detail')).scrollIntoViewIfNeeded();
    await shot('8-rollout-warning');

    // An abort from the page: its answer and the live events keep the warning on the rollout.
    await page.click(byTestId('rollout-abort'));
    await page.click(byTestId('rollout-abort'));
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-state')).toBe('aborted');
    expect(await shown.allTextContents()).toEqual([line]);
    expect(await item.locator(byTestId('rollout-item-warnings')).textContent()).toBe('warning FLEET_TRT_NO_CACHE');

    // Another rollout's detail has no warnings to show.
    await page.locator(byTestId('rollout-item')).nth(1).click();
    await expect.poll(() => page.getAttribute(byTestId('rollout-detail'), 'data-rollout-id')).not.toBe(started.id);
    expect(await page.locator(byTestId('rollout-warnings')).evaluate((el) => el.hidden)).toBe(true);
    expect(await page.locator(byTestId('rollout-warning')).count()).toBe(0);
  });
});
