import { kwError, type ErrorCode } from '../errors/index.js';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a readable duration into milliseconds: `30d`, `24h`, `90m`, `45s`, `250ms`, `1w`,
 * combinations such as `1h30m`, a bare number of seconds, or `0`/`none`/`unlimited` for
 * "no limit" (0). Anything else is `code` (the caller's usage or config error).
 */
export function parseDurationMs(text: string, code: ErrorCode, what = 'duration'): number {
  const t = text.trim().toLowerCase();
  if (t === 'none' || t === 'unlimited' || t === 'forever') return 0;
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const parts = [...t.matchAll(/(\d+)\s*(ms|[smhdw])/g)];
  const consumed = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || consumed.replace(/\s/g, '') !== t.replace(/\s/g, ''))
    throw kwError(code, `${what}: '${text}' is not a duration such as 30d, 24h, 90m, 45s, 250ms`);
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2] ?? 's'] ?? 1000), 0);
  if (!Number.isSafeInteger(ms)) throw kwError(code, `${what}: '${text}' is too long`);
  return ms;
}

/** Formats seconds the way {@link parseDurationMs} reads them (`0` is "unlimited"). */
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
