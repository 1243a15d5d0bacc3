import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { kwError } from '../errors/index.js';

/** File access, injectable so tests can play any board. */
export interface IdentityFs {
  /** Reads a whole file as text; rejects when it is absent. */
  readText(path: string): Promise<string>;
}

/** The real filesystem. */
export const NODE_IDENTITY_FS: IdentityFs = { readText: (p) => readFile(p, 'utf8') };

/** One hardware identity source: a name and how to read its value (undefined = absent). */
export interface IdentitySource {
  readonly name: string;
  read(fs: IdentityFs): Promise<string | undefined>;
}

async function readTrimmed(fs: IdentityFs, path: string): Promise<string | undefined> {
  try {
    // Device-tree strings end in NUL; machine-id in a newline.
    const text = (await fs.readText(path)).replace(/\0/g, '').trim();
    return text.length > 0 ? text : undefined;
  } catch {
    // A missing source is normal (no device tree on x86, no Serial on most CPUs).
    return undefined;
  }
}

/** systemd's /etc/machine-id (machine-id(5)): 128 random bits set at install. */
export const MACHINE_ID: IdentitySource = {
  name: 'machine-id',
  read: (fs) => readTrimmed(fs, '/etc/machine-id'),
};

/** The board serial from the device tree (Raspberry Pi, most ARM boards). */
export const BOARD_SERIAL: IdentitySource = {
  name: 'board-serial',
  read: (fs) => readTrimmed(fs, '/proc/device-tree/serial-number'),
};

/** The SoC serial from /proc/cpuinfo's "Serial" line (ARM). */
export const CPU_SERIAL: IdentitySource = {
  name: 'cpu-serial',
  read: async (fs) => {
    const text = await readTrimmed(fs, '/proc/cpuinfo');
    const m = text ? /^Serial\s*:\s*([0-9a-fA-F]+)\s*$/m.exec(text) : null;
    return m?.[1]?.replace(/^0+(?=.)/, '').toLowerCase();
  },
};

/** A source with a fixed value (configuration, tests). */
export function fixedSource(name: string, value: string | undefined): IdentitySource {
  return { name, read: () => Promise.resolve(value) };
}

/** The default sources, in order. */
export const DEFAULT_IDENTITY_SOURCES: readonly IdentitySource[] = [
  MACHINE_ID,
  BOARD_SERIAL,
  CPU_SERIAL,
];

/** A device's hardware identity. Raw values stay on the device; only digests leave. */
export interface HardwareIdentity {
  /** SHA-256 over all present sources: what the provisioning request carries. */
  readonly digest: Uint8Array;
  /** Per-source SHA-256 digests, by source name (present sources only). */
  readonly sources: Readonly<Record<string, Uint8Array>>;
}

function sourceDigest(name: string, value: string): Uint8Array {
  return createHash('sha256').update(`keywarden/v1 hwid ${name}\0${value}`).digest();
}

/** Reads the identity from `sources`; HARDWARE_IDENTITY_UNAVAILABLE when none is present. */
export async function readHardwareIdentity(
  sources: readonly IdentitySource[] = DEFAULT_IDENTITY_SOURCES,
  fs: IdentityFs = NODE_IDENTITY_FS,
): Promise<HardwareIdentity> {
  const present: Record<string, Uint8Array> = {};
  for (const s of sources) {
    const value = await s.read(fs);
    if (value !== undefined) present[s.name] = sourceDigest(s.name, value);
  }
  const names = Object.keys(present).sort();
  if (names.length === 0) {
    throw kwError('HARDWARE_IDENTITY_UNAVAILABLE', 'no hardware identity source could be read', {
      sources: sources.map((s) => s.name),
    });
  }
  const all = createHash('sha256').update('keywarden/v1 hwid');
  for (const n of names) all.update(present[n]!);
  return { digest: all.digest(), sources: present };
}

/**
 * The subsets of sources that form a majority (⌊n/2⌋+1 of n). The key vault wraps its key
 * under each, so it opens while a majority is unchanged: "changed significantly" means a
 * majority of the sources changed.
 */
export function majoritySubsets(names: readonly string[]): string[][] {
  const sorted = [...names].sort();
  const need = Math.floor(sorted.length / 2) + 1;
  const out: string[][] = [];
  const pick = (start: number, acc: string[]): void => {
    if (acc.length === need) return void out.push(acc);
    for (let i = start; i < sorted.length; i++) pick(i + 1, [...acc, sorted[i]!]);
  };
  pick(0, []);
  return out;
}
