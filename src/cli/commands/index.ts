import type { Command } from 'commander';
import { registerAgent } from './agent.js';
import { registerDecrypt } from './decrypt.js';
import { registerDemo } from './demo.js';
import { registerFleet } from './fleet.js';
import { registerHeadend } from './headend.js';
import { registerInspect } from './inspect.js';
import { registerOutputs } from './outputs.js';
import { registerPackage } from './package.js';

/** Registers every `keywarden` subcommand. */
export function registerCommands(program: Command): void {
  registerDemo(program);
  registerDecrypt(program);
  registerPackage(program);
  registerInspect(program);
  registerHeadend(program);
  registerAgent(program);
  registerFleet(program);
  registerOutputs(program);
}
