import { describe, expect, it } from 'vitest';
import {
  decideOutput,
  levelOf,
  requirementsOf,
  OPL_TABLES,
} from '../../../src/output/policy/index.js';
import type {
  OutputConnectorState,
  OutputDecision,
  ProtectionLevel,
  Track,
} from '../../../src/output/types.js';
import type { keywarden } from '../../../src/protocol/generated/proto.js';
import { fixedConn as conn, lic, state } from './policy-helpers.js';

/**
 * Every row of every OPL table (DESIGN.md "Output protection"), including 0, the in-between
 * values (conservative reading: the next row up) and the extremes, first through levelOf and
 * then through a decision on every relevant connector class.
 */

/** A decision as one comparable word: allow, allow-protected, pending:<mechanisms>, block:<number>. */
function outcome(d: OutputDecision): string {
  if (d.action === 'block') return `block:${d.error?.number}`;
  if (d.action === 'pending') return `pending:${d.engage.map((e) => e.mechanism).join(',')}`;
  return d.action;
}

function decideOn(
  op: keywarden.v1.IOutputProtection,
  c: OutputConnectorState,
  track: Track = 'video',
): string {
  return outcome(decideOutput(requirementsOf(lic(op)), state(c), track));
}

const U: ProtectionLevel = 'unrestricted';
const BE: ProtectionLevel = 'best-effort';
const R: ProtectionLevel = 'restricted';
const D: ProtectionLevel = 'disallow';

describe('levelOf: the OPL tables', () => {
  it.each([
    [0, U],
    [1, U],
    [99, U],
    [100, U],
    [101, BE],
    [120, BE],
    [150, BE],
    [151, R],
    [180, R],
    [200, R],
    [201, D],
    [250, D],
    [1000, D],
    [4294967295, D],
  ])('analog video OPL %i → %s', (opl, level) => {
    expect(levelOf('analog-video', opl)).toBe(level);
  });

  it.each([
    [0, U],
    [100, U],
    [101, BE],
    [120, BE],
    [150, BE],
    [200, BE],
    [250, BE],
    [251, R],
    [260, R],
    [300, R],
    [301, D],
    [500, D],
    [4294967295, D],
  ])('uncompressed digital video OPL %i → %s', (opl, level) => {
    expect(levelOf('uncompressed-digital-video', opl)).toBe(level);
  });

  it.each([
    [0, U],
    [50, U],
    [100, U],
    [101, D],
    [120, D],
    [150, D],
    [300, D],
  ])('compressed and uncompressed digital audio OPL %i → %s', (opl, level) => {
    expect(levelOf('compressed-digital-audio', opl)).toBe(level);
    expect(levelOf('uncompressed-digital-audio', opl)).toBe(level);
  });

  it.each([0, 100, 250, 400, 500, 501])(
    'compressed digital video OPL %i is satisfied by construction (unrestricted)',
    (opl) => {
      expect(levelOf('compressed-digital-video', opl)).toBe(U);
    },
  );

  it('reads absent as unset, and a value that is not a number ≥ 0 as the last row', () => {
    expect(levelOf('analog-video', undefined)).toBe(U);
    expect(levelOf('analog-video', null)).toBe(U);
    expect(levelOf('analog-video', Number.NaN)).toBe(D);
    expect(levelOf('uncompressed-digital-video', -1)).toBe(D);
  });

  it('publishes tables whose rows are ordered and end unbounded', () => {
    for (const rows of Object.values(OPL_TABLES)) {
      expect(rows[rows.length - 1]!.upTo).toBeNull();
      const bounds = rows.slice(0, -1).map((r) => r.upTo!);
      expect([...bounds].sort((a, b) => a - b)).toEqual(bounds);
    }
  });

  it('takes the stricter of the two audio tables', () => {
    const r = requirementsOf(
      lic({ compressedDigitalAudioOpl: 100, uncompressedDigitalAudioOpl: 150 }),
    );
    expect(r.digitalAudio).toBe(D);
    expect(requirementsOf(lic({ compressedDigitalAudioOpl: 150 })).digitalAudio).toBe(D);
    expect(requirementsOf(lic({ compressedDigitalAudioOpl: 100 })).digitalAudio).toBe(U);
  });
});

describe('analog video table on every connector class', () => {
  // [opl, cgms-a analog output, analog output with no mechanism, DVI-I (HDCP off),
  //  capture path]
  const rows: [number, string, string, string, string][] = [
    [0, 'allow', 'allow', 'allow', 'allow'],
    [100, 'allow', 'allow', 'allow', 'allow'],
    [120, 'pending:cgms-a', 'allow', 'allow', 'block:6030'],
    [150, 'pending:cgms-a', 'allow', 'allow', 'block:6030'],
    [151, 'pending:cgms-a', 'block:6030', 'block:6030', 'block:6030'],
    [200, 'pending:cgms-a', 'block:6030', 'block:6030', 'block:6030'],
    [201, 'block:6030', 'block:6030', 'block:6030', 'block:6030'],
    [500, 'block:6030', 'block:6030', 'block:6030', 'block:6030'],
  ];

  it.each(rows)('analog OPL %i', (opl, cgms, none, dviI, capture) => {
    const op = { analogVideoOpl: opl };
    for (const t of ['Composite', 'SVIDEO', 'Component', 'TV', '9PinDIN'] as const)
      expect(decideOn(op, conn(t)), t).toBe(cgms);
    for (const t of ['VGA', 'DVI-A', 'Unknown'] as const)
      expect(decideOn(op, conn(t)), t).toBe(none);
    expect(decideOn(op, conn('DVI-I')), 'DVI-I').toBe(dviI);
    for (const t of ['Writeback', 'Virtual'] as const)
      expect(decideOn(op, conn(t)), t).toBe(capture);
    // Digital-only outputs and built-in panels are not governed by the analog table.
    for (const t of ['HDMI-A', 'HDMI-B', 'DP', 'DVI-D', 'SPI', 'USB'] as const)
      expect(decideOn(op, conn(t)), t).toBe('allow');
    for (const t of ['eDP', 'LVDS', 'DSI', 'DPI'] as const)
      expect(decideOn(op, conn(t)), t).toBe('allow');
    // A DVI-I with HDCP enabled drives its digital encoder: the analog side is not live.
    expect(decideOn(op, conn('DVI-I', { contentProtection: 'enabled' }))).toBe('allow');
    // Audio keys are not governed by video tables.
    expect(decideOn(op, conn('Composite'), 'audio')).toBe('allow');
  });

  it.each([
    [150, 'requested', 'allow-protected'],
    [150, 'failed', 'allow'],
    [200, 'requested', 'allow-protected'],
    [200, 'failed', 'block:6037'],
  ] as const)('analog OPL %i after CGMS-A was %s → %s', (opl, st, expected) => {
    const c = conn('Composite', { attempt: { mechanism: 'cgms-a', state: st } });
    expect(decideOn({ analogVideoOpl: opl }, c)).toBe(expected);
  });
});

describe('uncompressed digital video table on every connector class', () => {
  // [opl, HDCP output with HDCP off, HDCP output with HDCP enabled, digital output with no
  //  mechanism, capture path]
  const rows: [number, string, string, string, string][] = [
    [0, 'allow', 'allow', 'allow', 'allow'],
    [100, 'allow', 'allow', 'allow', 'allow'],
    [120, 'pending:hdcp', 'allow-protected', 'allow', 'block:6030'],
    [150, 'pending:hdcp', 'allow-protected', 'allow', 'block:6030'],
    [200, 'pending:hdcp', 'allow-protected', 'allow', 'block:6030'],
    [250, 'pending:hdcp', 'allow-protected', 'allow', 'block:6030'],
    [251, 'pending:hdcp', 'allow-protected', 'block:6030', 'block:6030'],
    [260, 'pending:hdcp', 'allow-protected', 'block:6030', 'block:6030'],
    [300, 'pending:hdcp', 'allow-protected', 'block:6030', 'block:6030'],
    [301, 'block:6030', 'block:6030', 'block:6030', 'block:6030'],
    [500, 'block:6030', 'block:6030', 'block:6030', 'block:6030'],
  ];

  it.each(rows)('digital OPL %i', (opl, off, on, none, capture) => {
    const op = { uncompressedDigitalVideoOpl: opl };
    for (const t of ['HDMI-A', 'HDMI-B', 'DP', 'DVI-D', 'DVI-I'] as const) {
      expect(decideOn(op, conn(t)), `${t} off`).toBe(off);
      expect(decideOn(op, conn(t, { contentProtection: 'enabled' })), `${t} enabled`).toBe(on);
    }
    for (const t of ['SPI', 'USB', 'Unknown'] as const) expect(decideOn(op, conn(t)), t).toBe(none);
    for (const t of ['Writeback', 'Virtual'] as const)
      expect(decideOn(op, conn(t)), t).toBe(capture);
    for (const t of ['VGA', 'DVI-A', 'Composite', 'SVIDEO', 'Component', 'TV', '9PinDIN'] as const)
      expect(decideOn(op, conn(t)), t).toBe('allow');
    for (const t of ['eDP', 'LVDS', 'DSI', 'DPI'] as const)
      expect(decideOn(op, conn(t)), t).toBe('allow');
    expect(decideOn(op, conn('HDMI-A'), 'audio')).toBe('allow');
  });

  it.each([
    [150, 'requested', 'allow'],
    [150, 'failed', 'allow'],
    [250, 'failed', 'allow'],
    [300, 'requested', 'pending:'],
    [300, 'failed', 'block:6032'],
  ] as const)('digital OPL %i after HDCP was %s → %s', (opl, st, expected) => {
    const c = conn('HDMI-A', {
      contentProtection: 'desired',
      attempt: { mechanism: 'hdcp', state: st },
    });
    expect(decideOn({ uncompressedDigitalVideoOpl: opl }, c)).toBe(expected);
  });
});

describe('digital audio tables on every connector class', () => {
  // [opl, output carrying digital audio, output not carrying it]
  const rows: [number, string, string][] = [
    [0, 'allow', 'allow'],
    [100, 'allow', 'allow'],
    [101, 'block:6030', 'allow'],
    [120, 'block:6030', 'allow'],
    [150, 'block:6030', 'allow'],
    [300, 'block:6030', 'allow'],
  ];

  it.each(rows)('audio OPL %i', (opl, carrier, other) => {
    for (const field of ['compressedDigitalAudioOpl', 'uncompressedDigitalAudioOpl'] as const) {
      const op = { [field]: opl };
      for (const t of ['HDMI-A', 'HDMI-B', 'DP', 'Unknown'] as const) {
        expect(decideOn(op, conn(t), 'audio'), `${field} ${t}`).toBe(carrier);
        // A key of unknown track type gets the audio rules too.
        expect(decideOn(op, conn(t), 'unknown'), `${field} ${t} unknown`).toBe(carrier);
        // HDCP does not make digital audio allowed.
        expect(decideOn(op, conn(t, { contentProtection: 'enabled' }), 'audio')).toBe(carrier);
        // Video keys are not governed by the audio tables.
        expect(decideOn(op, conn(t), 'video'), `${field} ${t} video`).toBe('allow');
      }
      for (const t of [
        'DVI-D',
        'DVI-I',
        'VGA',
        'Composite',
        'eDP',
        'Writeback',
        'Virtual',
        'SPI',
        'USB',
      ] as const)
        expect(decideOn(op, conn(t), 'audio'), `${field} ${t}`).toBe(other);
    }
  });
});

describe('compressed digital video OPL', () => {
  it.each([0, 100, 300, 500, 501])('OPL %i never restricts an output', (opl) => {
    for (const t of ['HDMI-A', 'VGA', 'Composite', 'Writeback', 'Unknown'] as const)
      expect(decideOn({ compressedDigitalVideoOpl: opl }, conn(t)), t).toBe('allow');
  });

  it('notes the by-construction reading when set', () => {
    const d = decideOutput(
      requirementsOf(lic({ compressedDigitalVideoOpl: 500 })),
      state(conn('HDMI-A')),
      'video',
    );
    expect(d.notes.join('\n')).toMatch(/compressed_digital_video_opl 500.*construction/);
    const none = decideOutput(requirementsOf(lic({})), state(conn('HDMI-A')), 'video');
    expect(none.notes.join('\n')).not.toMatch(/compressed/);
  });
});
