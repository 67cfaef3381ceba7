import { AgentError } from '../errors.js';
import type { LoadedModel } from '../model/loaded-model.js';
import type { AgentServices } from './agent-services.js';

/** The model serving now, or AGENT_NO_ACTIVE_MODEL for the commands that need one. */
export function requireActive(agent: AgentServices): LoadedModel {
  const active = agent.active();
  if (active === undefined) throw new AgentError('AGENT_NO_ACTIVE_MODEL', 'no model is active on this device');
  return active;
}
