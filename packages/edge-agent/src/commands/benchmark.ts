import type { BenchmarkCommand } from '@kd-edge/core';
import { benchmarkModel } from '../model/model-benchmark.js';
import type { AgentServices } from './agent-services.js';
import type { CommandContext } from './command-context.js';
import { summary } from './deploy.js';
import { requireActive } from './require-active.js';

/** The `benchmark` command: benchmarks the active model on the device and publishes the report on `bench`. */
export async function benchmark(agent: AgentServices, cmd: BenchmarkCommand, ctx: CommandContext): Promise<void> {
  const active = requireActive(agent);
  await ctx.event('benchmarking');
  const bench = agent.transformBench(await benchmarkModel(active, {
    deviceId: agent.deviceId, commandId: cmd.id,
    warmup: cmd.warmup ?? agent.config.benchmark.warmup, iterations: cmd.iterations ?? agent.config.benchmark.iterations,
  }));
  await agent.publishBench(bench);
  await ctx.event('succeeded', { result: { version: active.manifest.version, ...summary(bench) } });
}
