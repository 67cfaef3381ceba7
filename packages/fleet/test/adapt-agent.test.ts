// A teacher pushed by kd-fleet to a real kd-agent (issue 16): FleetServer on its embedded aedes, one simulated device
// running the real agent. The push is the signed deploy a rollout sends; the agent installs the teacher without
// serving it, and the fleet sees its answer.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { startAdaptFleet, type AdaptFleet } from './adapt-helpers.js';
import { waitFor } from './http-helpers.js';
import { makeDetectorPackage } from './simulator-helpers.js';

let fx: AdaptFleet;
let sim: FleetSimulator | undefined;
let deviceId: string;

beforeAll(async () => {
  fx = await startAdaptFleet();
  // The agent trusts the package key and the fleet's command key (commands are signed with the latter).
  sim = await FleetSimulator.start({
    devices: 1, profile: 'x86', broker: fx.server.mqttUrl, fleet: fx.server.context.fleet,
    keys: [join(fx.root, 'fleet.pub'), join(fx.root, 'command.pub')], root: join(fx.root, 'devices'), staggerMs: 0, seed: 1, iterations: 3, warmup: 1,
  });
  deviceId = sim.devices[0]!.deviceId;
  await waitFor('the agent online', () => fx.server.context.devices.get(deviceId)?.online === true, 60_000);
}, 120_000);
afterAll(async () => {
  await sim?.stop();
  await fx?.close();
}, 60_000);

describe('a teacher pushed to a real kd-agent', () => {
  it('is installed as the device\'s teacher, never served, and the fleet records the agent\'s answer', async () => {
    const teacher = await makeDetectorPackage(join(fx.root, 'real'), 'shapes-big', '1.0.0', fx.keys.fleet.privateKeyPem, 11, false, 0, { role: 'teacher' });
    const pushed = await fx.call('POST', '/api/models', new Uint8Array(await (await import('node:fs/promises')).readFile(teacher.tar)));
    expect([pushed.status, pushed.body.role]).toEqual([201, 'teacher']);

    const cli = await fx.cli('devices', 'push-teacher', 'shapes-big', '1.0.0', '--device', deviceId, '--json');
    expect(cli.code).toBe(0);
    const [sent] = JSON.parse(cli.out) as Array<{ commandId: string }>;
    const answer = () => {
      const e = fx.server.context.devices.get(deviceId)?.lastEvent;
      return e?.commandId === sent!.commandId ? e : undefined;
    };
    await waitFor('the agent\'s final answer', () => ['succeeded', 'failed'].includes(answer()?.state ?? ''), 60_000);
    expect(answer()).toMatchObject({ command: 'deploy', state: 'succeeded', result: { role: 'teacher', version: '1.0.0' } });
    // Not served: the device still reports no active model.
    expect(fx.server.context.devices.get(deviceId)!.activeModel).toBeNull();
  }, 120_000);
});
