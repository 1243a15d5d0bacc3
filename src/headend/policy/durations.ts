import { kwError } from '../../errors/index.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/**
 * Parses a readable duration into seconds: `30d`, `24h`, `90m`, `45s`, `1w`, combinations
 * such as `1h30m`, a bare number of seconds, or `0`/`none`/`unlimited` for "no limit" (0).
 */
export function parseDuration(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'none' || t === 'unlimited' || t === 'forever') return 0;
  if (/^\d+$/.test(t)) return Number(t);
  const parts = [...t.matchAll(/(\d+)\s*([smhdw])/g)];
  const consumed = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || consumed.replace(/\s/g, '') !== t.replace(/\s/g, ''))
    throw kwError('HEADEND_BAD_POLICY', `'${text}' is not a duration such as 30d, 24h, 90m, 45s`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_SECONDS[p[2] ?? 's'] ?? 1), 0);
}

/** Formats seconds the way {@link parseDuration} reads them (`0` is "unlimited"). */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return 'unlimited';
  let rest = seconds;
  let out = '';
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}
