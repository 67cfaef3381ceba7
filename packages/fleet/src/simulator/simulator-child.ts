// Entry of one simulator child process (`FleetSimulator` with processes > 1 forks it): runs its share of the agents in
// an AgentPool and talks to the parent over the IPC channel only. Not imported by the library.
import type { Logger } from '@kd-edge/core/util';
import { AgentPool } from './agent-pool.js';
import type { ChildMessage, ParentMessage, SimLogLevel } from './simulator-ipc.js';

const LEVELS: SimLogLevel[] = ['debug', 'info', 'warn', 'error', 'none'];

let pool: AgentPool | undefined;
let stopping: Promise<void> | undefined;

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function logger(level: SimLogLevel): Logger {
  const min = LEVELS.indexOf(level);
  const at = (l: SimLogLevel) => (message: string): void => {
    if (LEVELS.indexOf(l) >= min) void send({ type: 'log', level: l, message });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function shutdown(exitCode: number): Promise<void> {
  stopping ??= (async () => {
    await pool?.stop();
    await send({ type: 'stopped' });
    // ONNX Runtime and stray sockets may hold the loop open; the agents are stopped, so leave.
    process.exit(exitCode);
  })();
  await stopping;
}

async function onMessage(msg: ParentMessage): Promise<void> {
  switch (msg.type) {
    case 'start':
      try {
        pool = new AgentPool(msg.options, msg.specs, logger(msg.logLevel));
        pool.on('online', (deviceId) => void send({ type: 'online', deviceId }));
        pool.on('bench', (bench) => void send({ type: 'bench', bench }));
        pool.on('agentError', (deviceId, err) => void send({ type: 'agentError', deviceId, message: err.message, code: codeOf(err) }));
        await pool.start();
        await send({ type: 'started' });
      } catch (err) {
        await send({ type: 'failed', message: (err as Error).message, code: codeOf(err) });
        await shutdown(1);
      }
      return;
    case 'kill':
    case 'restart':
      try {
        if (pool === undefined) throw new Error('not started');
        await (msg.type === 'kill' ? pool.kill(msg.deviceId) : pool.restart(msg.deviceId));
        await send({ type: 'done', requestId: msg.requestId });
      } catch (err) {
        await send({ type: 'done', requestId: msg.requestId, error: { message: (err as Error).message, code: codeOf(err) } });
      }
      return;
    case 'stop':
      await shutdown(0);
      return;
  }
}

if (process.send === undefined) {
  process.stderr.write('simulator-child: run by the kd-fleet simulator (an IPC channel is needed)\n');
  process.exit(2);
}
process.on('message', (msg: ParentMessage) => void onMessage(msg));
// The parent went away without saying stop: end the agents cleanly rather than leave orphans.
process.on('disconnect', () => void shutdown(0));
