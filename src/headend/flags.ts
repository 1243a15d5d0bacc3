import { kwError } from '../errors/index.js';
import { isSemver, type HeadendSettings } from './settings.js';

/** One server flag: its setting, and how its text is checked. */
export interface FlagSpec {
  readonly setting: 'minAgentVersion' | 'provisioningLimit';
  readonly description: string;
  /** The setting's value for `text`; a coded CLI_USAGE error when it is not valid. */
  parse(text: string): string | number;
}

function positiveInt(name: string, text: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) < 1 || !Number.isSafeInteger(Number(t)))
    throw kwError('CLI_USAGE', `${name} is a whole number of at least 1, not '${text}'`);
  return Number(t);
}

/**
 * The server flags kept in the database (table `flags`) rather than in each process: every
 * cluster worker reads the same values on each provisioning request, an operator changes
 * them with `keywarden headend flags set` while the head-end runs, and they survive
 * restarts. `--min-agent-version` and `--provision-limit` on the serving command write them.
 */
export const SERVER_FLAGS: Readonly<Record<string, FlagSpec>> = {
  'min-agent-version': {
    setting: 'minAgentVersion',
    description: 'lowest agent version the provisioning authority certifies (semver)',
    parse: (text) => {
      if (!isSemver(text))
        throw kwError('CLI_USAGE', `min-agent-version is MAJOR.MINOR.PATCH, not '${text}'`);
      return text.trim().replace(/^v/, '');
    },
  },
  'provision-limit': {
    setting: 'provisioningLimit',
    description: 'provisioning requests per hardware identity per hour',
    parse: (text) => positiveInt('provision-limit', text),
  },
};

/** Names of the server flags. */
export const FLAG_NAMES = Object.keys(SERVER_FLAGS);

/** The spec of flag `name`; an unknown name is a coded CLI_USAGE error. */
export function flagSpec(name: string): FlagSpec {
  const spec = SERVER_FLAGS[name];
  if (!spec)
    throw kwError('CLI_USAGE', `unknown flag '${name}'; known: ${FLAG_NAMES.join(', ')}`, {
      name,
    });
  return spec;
}

/** Checks a flag's text and returns its canonical form (what is stored). */
export function canonicalFlag(name: string, text: string): string {
  return String(flagSpec(name).parse(text));
}

/** The flags that explicit settings (command-line options, API callers) set. */
export function flagsOfSettings(settings: Partial<HeadendSettings>): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, spec] of Object.entries(SERVER_FLAGS)) {
    const value = settings[spec.setting];
    if (value !== undefined) out.push([name, canonicalFlag(name, String(value))]);
  }
  return out;
}

/** `settings` without the fields that are server flags (they live in the database). */
export function withoutFlags(settings: Partial<HeadendSettings>): Partial<HeadendSettings> {
  const rest: Partial<Record<keyof HeadendSettings, unknown>> = { ...settings };
  for (const spec of Object.values(SERVER_FLAGS)) delete rest[spec.setting];
  return rest as Partial<HeadendSettings>;
}

/**
 * The settings in force: `base`, with every stored flag over it. A stored value that no
 * longer parses (written by a later version, or by hand) is skipped, so the base applies.
 */
export function applyFlags(base: HeadendSettings, stored: Record<string, string>): HeadendSettings {
  let out = base;
  for (const [name, text] of Object.entries(stored)) {
    const spec = SERVER_FLAGS[name];
    if (!spec) continue;
    try {
      out = { ...out, [spec.setting]: spec.parse(text) };
    } catch {
      // An unreadable stored flag must not take the provisioning authority down.
      continue;
    }
  }
  return out;
}
