// Rewrites the table in docs/errors.md from src/errors/catalogue.ts (between the markers).
// Run: node --import tsx scripts/gen-error-docs.ts
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ERRORS } from '../src/errors/catalogue.js';

const file = path.resolve(import.meta.dirname, '..', 'docs', 'errors.md');
const begin = '<!-- catalogue:begin -->';
const end = '<!-- catalogue:end -->';
const rows = Object.entries(ERRORS)
  .sort(([, a], [, b]) => a.number - b.number)
  .map(([code, spec]) => `| ${spec.number} | \`${code}\` | ${spec.hint.replace(/\|/g, '\\|')} |`);
const table = ['| number | code | what to do |', '|---:|---|---|', ...rows].join('\n');
const doc = readFileSync(file, 'utf8');
const a = doc.indexOf(begin);
const b = doc.indexOf(end);
if (a < 0 || b < a) throw new Error(`docs/errors.md lacks the ${begin} / ${end} markers`);
writeFileSync(file, `${doc.slice(0, a + begin.length)}\n${table}\n${doc.slice(b)}`);
console.log(`docs/errors.md: ${rows.length} errors`);
