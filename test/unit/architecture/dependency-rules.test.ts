import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * DESIGN.md: each folder under src/ is a room with one job, and dependencies point inward.
 * The head-end shares only protocol, crypto and media (and the low-level errors and io)
 * with the device side, and the device never loads head-end code or its dependencies.
 */
const SRC = path.resolve(import.meta.dirname, '../../../src');

const BASE = ['errors', 'io'];
const ALLOWED: Record<string, string[]> = {
  errors: [],
  io: ['errors'],
  native: ['errors', 'media'],
  crypto: [...BASE],
  protocol: [...BASE, 'crypto'],
  media: [...BASE, 'native', 'protocol'],
  store: [...BASE, 'crypto'],
  output: [...BASE, 'native', 'protocol'],
  fleet: [...BASE, 'crypto', 'protocol'],
  agent: [...BASE, 'store', 'media', 'output', 'fleet', 'protocol', 'crypto', 'native'],
  daemon: [...BASE, 'agent', 'media', 'protocol', 'crypto', 'native', 'output'],
  headend: [...BASE, 'protocol', 'crypto', 'media'],
  cli: ['*'],
};

/** Packages only the head-end may load (optionalDependencies; a device installs without them). */
const HEADEND_ONLY_PACKAGES = ['better-sqlite3', '@peculiar/x509', 'reflect-metadata', 'aedes'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

interface ImportRef {
  spec: string;
  dynamic: boolean;
}

function imports(file: string): ImportRef[] {
  const text = readFileSync(file, 'utf8');
  const out: ImportRef[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'([^']+)'/g))
    out.push({ spec: m[1]!, dynamic: false });
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g))
    out.push({ spec: m[1]!, dynamic: true });
  return out;
}

const roomOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0] ?? '';

describe('dependency rules (DESIGN.md layout)', () => {
  const files = sourceFiles(SRC).filter((f) => path.relative(SRC, f).includes(path.sep));

  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(20);
  });

  it('has a rule for every room', () => {
    const rooms = new Set(files.map(roomOf));
    for (const room of rooms) expect(ALLOWED, `room src/${room} has no rule`).toHaveProperty(room);
  });

  it('points every import inward', () => {
    const violations: string[] = [];
    for (const file of files) {
      const room = roomOf(file);
      const allowed = ALLOWED[room] ?? [];
      for (const { spec } of imports(file)) {
        if (!spec.startsWith('.')) continue;
        const target = roomOf(path.resolve(path.dirname(file), spec));
        if (target === room || allowed.includes('*') || allowed.includes(target)) continue;
        violations.push(`${path.relative(SRC, file)} -> ${target} (${spec})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('loads head-end-only packages from the head-end alone', () => {
    const violations: string[] = [];
    for (const file of files) {
      if (roomOf(file) === 'headend') continue;
      for (const { spec } of imports(file)) {
        if (HEADEND_ONLY_PACKAGES.some((p) => spec === p || spec.startsWith(`${p}/`))) {
          violations.push(`${path.relative(SRC, file)} imports ${spec}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('lets the CLI reach the head-end only through a lazy import', () => {
    const eager: string[] = [];
    for (const file of files.filter((f) => roomOf(f) === 'cli')) {
      for (const { spec, dynamic } of imports(file)) {
        if (!dynamic && /\/headend\//.test(spec))
          eager.push(`${path.relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(eager).toEqual([]);
  });

  it('keeps head-end packages optional in package.json', () => {
    const pkg = JSON.parse(readFileSync(path.resolve(SRC, '..', 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const p of HEADEND_ONLY_PACKAGES) {
      expect(pkg.dependencies ?? {}, p).not.toHaveProperty(p);
      expect(pkg.optionalDependencies ?? {}, p).toHaveProperty(p);
    }
  });
});
