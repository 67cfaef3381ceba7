import { Command, Option } from 'commander';
import { LOG_LEVELS, stderrLogger, type LogLevel } from '@kd-edge/core';
import { Agent } from './agent.js';
import { loadAgentConfig } from './config/agent-config.js';

/**
 * kd-agent's command line: `kd-agent --config agent.yaml [flags]`. Runs until SIGTERM or SIGINT, then
 * stops cleanly (the retained status turns offline). Returns the exit code.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('kd-agent')
    .description('pulls signed models over MQTT, verifies, benchmarks, activates and serves them')
    .option('-c, --config <file>', 'YAML configuration (see docker/agent/agent.example.yaml)')
    .option('--fleet <id>', 'fleet id (topic root kd/v1/<fleet>)')
    .option('--device-id <id>', 'this device\'s id (default: the host name)')
    .option('--broker <url>', 'MQTT broker: mqtt://, mqtts://, ws:// or wss://')
    .option('--data-dir <dir>', 'model store, downloads, outbox and command ledger')
    .option('--key <file...>', 'trusted fleet public key(s) (PEM)')
    .addOption(new Option('--log-level <level>', 'least severe level printed').choices(LOG_LEVELS).default('info'))
    .option('--log-json', 'one JSON object per log line')
    .exitOverride();
  try {
    program.parse(argv);
  } catch (err) {
    return (err as { exitCode?: number }).exitCode ?? 2;
  }
  const o = program.opts<{ config?: string; fleet?: string; deviceId?: string; broker?: string; dataDir?: string; key?: string[]; logLevel: LogLevel; logJson?: boolean }>();
  const log = stderrLogger(o.logLevel, o.logJson === true);
  const overrides: Record<string, unknown> = {};
  if (o.fleet !== undefined) overrides.fleet = o.fleet;
  if (o.deviceId !== undefined) overrides.deviceId = o.deviceId;
  if (o.dataDir !== undefined) overrides.dataDir = o.dataDir;
  if (o.key !== undefined) overrides.keys = o.key;
  if (o.broker !== undefined) overrides.broker = { url: o.broker };
  let agent: Agent;
  try {
    const config = await loadAgentConfig({ file: o.config, env: process.env, overrides });
    agent = await Agent.start(config, { logger: log });
    const active = agent.active();
    log.info(`kd-agent ${config.deviceId} in fleet ${config.fleet}: ${config.broker.url}, ${active ? `serving ${active.manifest.name}@${active.manifest.version} on ${active.runtime.executionProvider}` : 'no model yet'}`);
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  }
  agent.on('error', (err) => log.warn(err.message));
  agent.on('event', (e) => log.info(`${e.command ?? '-'} ${e.commandId ?? '-'}: ${e.state}${e.code ? ` ${e.code}` : ''}${e.message ? ` (${e.message})` : ''}`));
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      log.info('stopping');
      void agent.stop().finally(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
