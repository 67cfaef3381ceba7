import { join } from 'node:path';
import { Command, Option } from 'commander';
import { LOG_LEVELS, KdEdgeError, stderrLogger, type LogLevel, type Logger } from '@kd-edge/core';
import { Agent } from './agent.js';
import { AGENT_CONFIG_SCHEMA, envOverrides, loadAgentConfig } from './config/agent-config.js';
import { buildTensorrtRunner, type BuiltTensorrtRunner } from './runtime/build-tensorrt.js';
import { describeTensorrtApi } from './runtime/tensorrt-headers.js';

/** Flags of `kd-agent` itself (the agent). */
interface AgentFlags {
  config?: string;
  fleet?: string;
  deviceId?: string;
  broker?: string;
  dataDir?: string;
  key?: string[];
  logLevel: LogLevel;
  logJson?: boolean;
}

/** Flags of `kd-agent runtime build-tensorrt`. */
interface BuildFlags {
  out?: string;
  config?: string;
  dataDir?: string;
  source?: string;
  tensorrtInclude?: string;
  tensorrtLib?: string;
  cudaInclude?: string;
  cudaLib?: string;
  cxx?: string;
  shmDir: string;
  json?: boolean;
}

/**
 * kd-agent's command line. `kd-agent --config agent.yaml [flags]` runs the agent until SIGTERM or SIGINT, then stops
 * cleanly (the retained status turns offline); `kd-agent runtime build-tensorrt [flags]` builds the native TensorRT
 * runner on this device and prints the configuration that serves through it. Returns the exit code.
 * @example process.exitCode = await main(process.argv);
 */
export async function main(argv: readonly string[]): Promise<number> {
  let job: (() => Promise<number>) | undefined;
  const program = new Command('kd-agent')
    .description('pulls signed models over MQTT, verifies, benchmarks, activates and serves them')
    // Flags before `runtime` are the agent's, after `build-tensorrt` the build's (both take --config and --data-dir).
    .enablePositionalOptions()
    .option('-c, --config <file>', 'YAML configuration (see docker/agent/agent.example.yaml)')
    .option('--fleet <id>', 'fleet id (topic root kd/v1/<fleet>)')
    .option('--device-id <id>', 'this device\'s id (default: the host name)')
    .option('--broker <url>', 'MQTT broker: mqtt://, mqtts://, ws:// or wss://')
    .option('--data-dir <dir>', 'model store, downloads, outbox and command ledger')
    .option('--key <file...>', 'trusted fleet public key(s) (PEM)')
    .addOption(new Option('--log-level <level>', 'least severe level printed').choices(LOG_LEVELS).default('info'))
    .option('--log-json', 'one JSON object per log line')
    .exitOverride()
    .action(() => {
      job = () => runAgent(program.opts<AgentFlags>());
    });
  const runtime = program.command('runtime').description('the native TensorRT runner shipped with the agent');
  runtime.command('build-tensorrt')
    .description('build the TensorRT runner from the source shipped with the agent against this device\'s TensorRT and CUDA, self-check it, and print its runtime.trtRunner configuration')
    .option('--out <file>', 'the binary to write (default <dataDir>/runtime/kd-trt-runner)')
    .option('-c, --config <file>', 'agent configuration whose dataDir holds the runner')
    .option('--data-dir <dir>', 'the agent\'s data folder (default: from --config, KD_AGENT_DATA_DIR, else /var/lib/kd-agent)')
    .option('--tensorrt-include <dir>', 'folder with NvInferRuntime.h and NvInferVersion.h (default: /usr/include/aarch64-linux-gnu, /usr/include/x86_64-linux-gnu, /usr/include)')
    .option('--tensorrt-lib <dir>', 'folder with libnvinfer.so (default: /usr/lib/aarch64-linux-gnu, /usr/lib/x86_64-linux-gnu, /usr/lib)')
    .option('--cuda-include <dir>', 'folder with cuda_runtime_api.h (default /usr/local/cuda/include)')
    .option('--cuda-lib <dir>', 'folder with libcudart.so (default /usr/local/cuda/lib64)')
    .option('--cxx <compiler>', 'C++17 compiler (default $CXX, else g++)')
    .option('--source <dir>', 'the runner\'s source folder (default: native/trt-runner of this agent\'s package)')
    .option('--shm-dir <dir>', 'the runner\'s --shm-dir, in the self-check and the printed configuration', '/dev/shm')
    .option('--json', 'print the result (or the error) as one JSON object')
    .action((_opts: unknown, cmd: Command) => {
      const own = definedOnly(cmd.opts<BuildFlags>());
      const global = program.opts<AgentFlags>();
      const flags = { ...own, config: own.config ?? global.config, dataDir: own.dataDir ?? global.dataDir } as BuildFlags;
      job = () => runBuildTensorrt(flags, stderrLogger(global.logLevel, global.logJson === true));
    });
  try {
    program.parse(argv);
  } catch (err) {
    return (err as { exitCode?: number }).exitCode ?? 2;
  }
  return job === undefined ? 2 : job();
}

async function runAgent(o: AgentFlags): Promise<number> {
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

/** `kd-agent runtime build-tensorrt`: progress on stderr, the result and the configuration lines on stdout. */
async function runBuildTensorrt(o: BuildFlags, log: Logger): Promise<number> {
  let built: BuiltTensorrtRunner;
  try {
    built = await buildTensorrtRunner({
      out: o.out ?? join(await dataDirOf(o), 'runtime', 'kd-trt-runner'),
      source: o.source, tensorrtInclude: o.tensorrtInclude, tensorrtLib: o.tensorrtLib, cudaInclude: o.cudaInclude, cudaLib: o.cudaLib,
      cxx: o.cxx, shmDir: o.shmDir, logger: log,
    });
  } catch (err) {
    const code = err instanceof KdEdgeError ? err.code : 'AGENT_INTERNAL';
    const message = (err as Error).message;
    process.stderr.write(`kd-agent runtime build-tensorrt: ${code}: ${message}\n`);
    if (o.json) process.stdout.write(`${JSON.stringify({ ok: false, code, message })}\n`);
    return 1;
  }
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ok: true, ...built })}\n`);
    return 0;
  }
  const t = built.tensorrt;
  const h = built.selfCheck.hello;
  const lines = [
    `built ${built.path}${built.replaced ? ' (replaced the previous runner)' : ''}`,
    `  TensorRT ${t.version} headers ${t.include}${t.compatHeaders ? ' (kd-edge compat declarations: a compile check, not TensorRT)' : ''}, libnvinfer ${t.lib}`,
    `  API: ${describeTensorrtApi(t.api)}`,
    `  CUDA ${built.cuda.include}, libcudart ${built.cuda.lib}`,
    `  compiler ${built.compiler.command.join(' ')}: ${built.compiler.version}`,
    `self-check: ok: hello ${h.runner} ${h.impl} ${h.version}, api ${h.api}${h.library !== undefined ? `, libnvinfer ${h.library}` : ''}${h.compatHeaders ? ', compat headers' : ''}; ${built.selfCheck.request}; shutdown exit ${built.selfCheck.exitCode}`,
    ...built.warnings.map((w) => `warning: ${w}`),
    '',
    'Serve through it: add to the agent configuration (agent.yaml) and restart the agent:',
    '',
    configYaml(built),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** The data folder the runner goes into: --data-dir, else --config's dataDir, else KD_AGENT_DATA_DIR, else the default. */
async function dataDirOf(o: BuildFlags): Promise<string> {
  if (o.dataDir !== undefined) return o.dataDir;
  if (o.config !== undefined) return (await loadAgentConfig({ file: o.config, env: process.env })).dataDir;
  const fromEnv = envOverrides(process.env).dataDir;
  return fromEnv !== undefined ? String(fromEnv) : AGENT_CONFIG_SCHEMA.shape.dataDir.parse(undefined);
}

/** The `runtime.trtRunner` lines of agent.yaml (JSON strings are YAML double-quoted scalars: any path survives). */
function configYaml(built: BuiltTensorrtRunner): string {
  const r = built.config.runtime.trtRunner;
  return ['runtime:', '  trtRunner:', `    command: [${r.command.map((a) => JSON.stringify(a)).join(', ')}]`, `    shmDir: ${JSON.stringify(r.shmDir)}`].join('\n');
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
