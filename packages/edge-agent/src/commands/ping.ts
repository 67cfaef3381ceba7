import type { AgentServices } from './agent-services.js';
import type { CommandContext } from './command-context.js';

/** The `ping` command: refreshes the retained status and answers with the uptime and the active version. Changes nothing. */
export async function ping(agent: AgentServices, ctx: CommandContext): Promise<void> {
  await agent.publishStatus();
  await ctx.event('succeeded', { result: { pong: true, uptimeSec: agent.uptimeSec(), active: agent.active()?.manifest.version ?? null } });
}
