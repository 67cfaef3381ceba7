import type { RollbackCommand } from '@kd-edge/core';
import { AgentError } from '../errors.js';
import type { AgentServices } from './agent-services.js';
import type { CommandContext } from './command-context.js';
import { requireActive } from './require-active.js';

/**
 * The `rollback` command: makes the store's previous version active again (it was verified when it was deployed), unless
 * `fromVersion` names a version that is no longer the active one (AGENT_ROLLBACK_STALE: a late rollback must not undo a
 * newer deploy). The swap's target is recorded before the swap, so a rollback resumed after a crash that moved the
 * pointer is reported done rather than swapped back.
 */
export async function rollback(agent: AgentServices, cmd: RollbackCommand, ctx: CommandContext): Promise<void> {
  const active = requireActive(agent);
  const swap = ctx.resumedFrom?.state === 'activating' ? (ctx.resumedFrom.result as { key?: unknown; from?: unknown } | undefined) : undefined;
  if (swap?.key === active.stored.key && typeof swap.from === 'string') {
    await ctx.event('rolled_back', { result: { version: active.manifest.version, from: swap.from } });
    return;
  }
  if (cmd.fromVersion !== undefined && active.manifest.version !== cmd.fromVersion) {
    throw new AgentError('AGENT_ROLLBACK_STALE', `rollback from ${cmd.fromVersion} refused: the active version is ${active.manifest.version}`);
  }
  const previous = agent.store.previous();
  if (previous === null) throw new AgentError('AGENT_NO_PREVIOUS_MODEL', `no previous version to roll back to from ${active.manifest.version}`);
  await ctx.event('activating', { message: `loading ${previous.info.version} beside ${active.manifest.version}`, result: { key: previous.key, from: active.manifest.version } });
  const loaded = await agent.load(previous);
  await agent.activate(loaded, 'rollback');
  await ctx.event('rolled_back', { result: { version: loaded.manifest.version, from: active.manifest.version } });
}
