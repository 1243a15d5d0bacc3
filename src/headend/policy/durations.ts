import { kwError } from '../../errors/index.js';
import { formatDuration, parseDurationMs } from '../../io/durations.js';

/**
 * Parses a readable policy duration into seconds: `30d`, `24h`, `90m`, `45s`, `1w`,
 * combinations such as `1h30m`, a bare number of seconds, or `0`/`none`/`unlimited` for
 * "no limit" (0). Anything else is HEADEND_BAD_POLICY.
 */
export function parseDuration(text: string): number {
  const ms = parseDurationMs(text, 'HEADEND_BAD_POLICY');
  if (ms % 1000 !== 0)
    throw kwError('HEADEND_BAD_POLICY', `'${text}': policy durations are whole seconds`);
  return ms / 1000;
}

export { formatDuration };
