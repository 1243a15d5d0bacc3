import { describe, expect, it } from 'vitest';
import {
  addedOutputs,
  decideOutput,
  describeDecision,
  explainLicense,
  isActive,
  isLinkLoss,
  linkLosses,
  profileOf,
  requirementsOf,
  strictestLevel,
  toClientInfoOutputs,
} from '../../../src/output/policy/index.js';
import type { KmsConnectorType, OutputState } from '../../../src/output/types.js';
import { keywarden } from '../../../src/protocol/generated/proto.js';
import { conn, state } from './policy-helpers.js';

describe('connector type → class and mechanism', () => {
  it.each([
    ['HDMI-A', 'digital', 'hdcp', null, true],
    ['HDMI-B', 'digital', 'hdcp', null, true],
    ['DP', 'digital', 'hdcp', null, true],
    ['DVI-D', 'digital', 'hdcp', null, false],
    ['DVI-I', 'digital', 'hdcp', 'none', false],
    ['DVI-A', 'analog', null, 'none', false],
    ['VGA', 'analog', null, 'none', false],
    ['Composite', 'analog', null, 'cgms-a', false],
    ['SVIDEO', 'analog', null, 'cgms-a', false],
    ['Component', 'analog', null, 'cgms-a', false],
    ['TV', 'analog', null, 'cgms-a', false],
    ['9PinDIN', 'analog', null, 'cgms-a', false],
    ['eDP', 'internal', null, null, false],
    ['LVDS', 'internal', null, null, false],
    ['DSI', 'internal', null, null, false],
    ['DPI', 'internal', null, null, false],
    ['Writeback', 'capture', null, null, false],
    ['Virtual', 'capture', null, null, false],
    ['SPI', 'none', 'none', null, false],
    ['USB', 'none', 'none', null, false],
    ['Unknown', 'none', 'none', 'none', true],
  ] as const)('%s: %s, digital %s, analog %s, audio %s', (type, cls, dig, ana, audio) => {
    const p = profileOf(type);
    expect(p.class).toBe(cls);
    // null: the side does not exist; 'none': it exists with no mechanism.
    expect(p.digitalVideo ? (p.digitalMechanism ?? 'none') : null).toBe(
      cls === 'capture' ? 'none' : dig,
    );
    expect(p.analogVideo ? (p.analogMechanism ?? 'none') : null).toBe(ana);
    expect(p.digitalAudio).toBe(audio);
  });

  it('treats a type it does not know as Unknown', () => {
    expect(profileOf('Holographic')).toBe(profileOf('Unknown'));
  });

  it('considers an output active when driven and not known to be disconnected', () => {
    expect(isActive(conn('HDMI-A'))).toBe(true);
    expect(isActive(conn('HDMI-A', { connection: 'unknown' }))).toBe(true);
    expect(isActive(conn('HDMI-A', { connection: 'disconnected' }))).toBe(false);
    expect(isActive(conn('HDMI-A', { active: false }))).toBe(false);
  });
});

describe('toClientInfoOutputs', () => {
  const T = keywarden.v1.ConnectorType;
  const H = keywarden.v1.HdcpState;

  it('maps every connector, active or not, to the proto OutputConnector', () => {
    const s = state(
      conn('HDMI-A', { name: 'HDMI-A-1', contentProtection: 'enabled', hdcpContentType: 'type1' }),
      conn('DP', { name: 'DP-1', contentProtection: 'enabled', hdcpContentType: 'type0' }),
      conn('HDMI-B', { name: 'HDMI-B-1', contentProtection: 'desired', active: false }),
      conn('Composite', { name: 'Composite-1' }),
      conn('VGA', { name: 'VGA-1', connection: 'disconnected' }),
      conn('eDP', { name: 'eDP-1' }),
      conn('Writeback', { name: 'Writeback-1' }),
    );
    const out = toClientInfoOutputs(s);
    expect(out).toEqual([
      {
        type: T.CONNECTOR_TYPE_HDMI,
        name: 'HDMI-A-1',
        active: true,
        hdcpState: H.HDCP_STATE_ENABLED,
        hdcpVersion: '2.2',
        hdcpContentType: 1,
        cgmsACapable: false,
      },
      {
        type: T.CONNECTOR_TYPE_DISPLAYPORT,
        name: 'DP-1',
        active: true,
        hdcpState: H.HDCP_STATE_ENABLED,
        hdcpVersion: '1.4',
        hdcpContentType: 0,
        cgmsACapable: false,
      },
      {
        type: T.CONNECTOR_TYPE_HDMI,
        name: 'HDMI-B-1',
        active: false,
        hdcpState: H.HDCP_STATE_DESIRED,
        hdcpVersion: '',
        hdcpContentType: 0,
        cgmsACapable: false,
      },
      {
        type: T.CONNECTOR_TYPE_COMPOSITE,
        name: 'Composite-1',
        active: true,
        hdcpState: H.HDCP_STATE_UNSUPPORTED,
        hdcpVersion: '',
        hdcpContentType: 0,
        cgmsACapable: true,
      },
      {
        type: T.CONNECTOR_TYPE_VGA,
        name: 'VGA-1',
        active: false,
        hdcpState: H.HDCP_STATE_UNSUPPORTED,
        hdcpVersion: '',
        hdcpContentType: 0,
        cgmsACapable: false,
      },
      {
        type: T.CONNECTOR_TYPE_INTERNAL,
        name: 'eDP-1',
        active: true,
        hdcpState: H.HDCP_STATE_UNSUPPORTED,
        hdcpVersion: '',
        hdcpContentType: 0,
        cgmsACapable: false,
      },
      {
        type: T.CONNECTOR_TYPE_UNSPECIFIED,
        name: 'Writeback-1',
        active: true,
        hdcpState: H.HDCP_STATE_UNSUPPORTED,
        hdcpVersion: '',
        hdcpContentType: 0,
        cgmsACapable: false,
      },
    ]);
    // Every entry is a valid message that survives the wire.
    for (const o of out) {
      expect(keywarden.v1.OutputConnector.verify(o)).toBeNull();
      const back = keywarden.v1.OutputConnector.decode(
        keywarden.v1.OutputConnector.encode(o).finish(),
      );
      expect(back.name).toBe(o.name);
      expect(back.type).toBe(o.type);
    }
  });

  it('maps the remaining types and HDCP states', () => {
    const types: [KmsConnectorType, number][] = [
      ['DVI-D', T.CONNECTOR_TYPE_DVI_D],
      ['DVI-A', T.CONNECTOR_TYPE_DVI_A],
      ['SVIDEO', T.CONNECTOR_TYPE_SVIDEO],
      ['9PinDIN', T.CONNECTOR_TYPE_SVIDEO],
      ['Component', T.CONNECTOR_TYPE_COMPONENT],
      ['LVDS', T.CONNECTOR_TYPE_INTERNAL],
      ['DSI', T.CONNECTOR_TYPE_INTERNAL],
      ['DPI', T.CONNECTOR_TYPE_INTERNAL],
      ['TV', T.CONNECTOR_TYPE_UNSPECIFIED],
      ['Virtual', T.CONNECTOR_TYPE_UNSPECIFIED],
      ['USB', T.CONNECTOR_TYPE_UNSPECIFIED],
      ['Unknown', T.CONNECTOR_TYPE_UNSPECIFIED],
    ];
    for (const [t, want] of types)
      expect(toClientInfoOutputs(state(conn(t)))[0]?.type, t).toBe(want);
    expect(toClientInfoOutputs(state(conn('HDMI-A')))[0]?.hdcpState).toBe(H.HDCP_STATE_OFF);
  });

  it('reports a DVI-I as DVI-A unless HDCP proves its digital side drives it', () => {
    expect(toClientInfoOutputs(state(conn('DVI-I')))[0]?.type).toBe(T.CONNECTOR_TYPE_DVI_A);
    expect(
      toClientInfoOutputs(state(conn('DVI-I', { contentProtection: 'enabled' })))[0]?.type,
    ).toBe(T.CONNECTOR_TYPE_DVI_D);
  });

  it('reports CGMS-A capability only where the driver has the property', () => {
    expect(toClientInfoOutputs(state(conn('Composite', { cgmsA: false })))[0]?.cgmsACapable).toBe(
      false,
    );
  });

  it('reports nothing for an unknown state', () => {
    expect(toClientInfoOutputs({ known: false, reason: 'no KMS' })).toEqual([]);
  });
});

describe('transitions for the monitor', () => {
  const on = conn('HDMI-A', { contentProtection: 'enabled' });

  it('a link loss is Enabled → not Enabled on a connector that stays active', () => {
    expect(isLinkLoss(on, { ...on, contentProtection: 'desired' })).toBe(true);
    expect(isLinkLoss(on, { ...on, contentProtection: 'undesired' })).toBe(true);
    expect(isLinkLoss(on, on)).toBe(false);
    expect(isLinkLoss({ ...on, contentProtection: 'desired' }, on)).toBe(false);
    expect(isLinkLoss(on, { ...on, contentProtection: 'desired', active: false })).toBe(false);
    expect(
      isLinkLoss(on, { ...on, connection: 'disconnected', contentProtection: 'desired' }),
    ).toBe(false);
    expect(isLinkLoss(on, undefined)).toBe(false);
    expect(isLinkLoss(undefined, on)).toBe(false);
  });

  it('finds link losses and added outputs between snapshots, by connector id', () => {
    const other = conn('DP', { contentProtection: 'enabled' });
    const vga = conn('VGA', { active: false });
    const before = state(on, other, vga);
    const after = state(
      { ...on, contentProtection: 'desired' },
      other,
      { ...vga, active: true },
      conn('Composite'),
    );
    expect(linkLosses(before, after).map((c) => c.id)).toEqual([on.id]);
    expect(addedOutputs(before, after).map((c) => c.type)).toEqual(['VGA', 'Composite']);
    expect(addedOutputs(before, before)).toEqual([]);
    const unknown: OutputState = { known: false, reason: 'x' };
    expect(linkLosses(unknown, after)).toEqual([]);
    expect(addedOutputs(unknown, after).map((c) => c.id)).toEqual(
      after.known ? after.connectors.filter(isActive).map((c) => c.id) : [],
    );
    expect(addedOutputs(before, unknown)).toEqual([]);
  });
});

describe('explainLicense and describeDecision', () => {
  const license: keywarden.v1.ILicense = {
    policy: {
      canPlay: true,
      outputProtection: {
        analogVideoOpl: 150,
        uncompressedDigitalVideoOpl: 300,
        compressedDigitalVideoOpl: 500,
        uncompressedDigitalAudioOpl: 150,
        hdcpVersion: '2.2',
        cgmsA: keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_ONCE,
      },
      maxWidth: 1280,
      maxHeight: 720,
    },
  };

  it('lists every requirement with what it alone decides', () => {
    const hdmi = conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type0' });
    const vga = conn('VGA');
    const rows = explainLicense(requirementsOf(license), state(hdmi, vga));
    const by = Object.fromEntries(rows.map((r) => [r.requirement, r]));
    expect(rows.map((r) => r.requirement)).toEqual([
      'analog_video_opl',
      'uncompressed_digital_video_opl',
      'compressed_digital_video_opl',
      'compressed_digital_audio_opl',
      'uncompressed_digital_audio_opl',
      'hdcp_version',
      'hdcp_type1',
      'cgms_a',
      'disable_analog_output',
      'max_resolution',
    ]);
    expect(by['analog_video_opl']).toMatchObject({
      set: true,
      value: '150',
      level: 'best-effort',
      track: 'video',
      action: 'allow', // VGA: nothing to try; HDMI not concerned
    });
    expect(by['uncompressed_digital_video_opl']).toMatchObject({
      level: 'restricted',
      action: 'allow-protected',
    });
    expect(by['compressed_digital_video_opl']).toMatchObject({
      set: true,
      level: 'unrestricted',
      action: 'allow',
    });
    expect(by['compressed_digital_audio_opl']).toMatchObject({ set: false, action: 'allow' });
    expect(by['uncompressed_digital_audio_opl']).toMatchObject({
      level: 'disallow',
      track: 'audio',
      action: 'block',
      code: 'OUTPUT_PROTECTION_UNMET',
    });
    expect(by['hdcp_version']).toMatchObject({ set: true, value: '2.2', action: 'pending' });
    expect(by['hdcp_type1']).toMatchObject({ set: false, action: 'allow' });
    expect(by['cgms_a']).toMatchObject({
      value: 'copy-once',
      action: 'block',
      code: 'OUTPUT_PROTECTION_UNMET',
    });
    expect(by['disable_analog_output']).toMatchObject({ set: false, action: 'allow' });
    expect(by['max_resolution']).toMatchObject({
      set: true,
      value: '1280x720',
      action: 'downscale',
    });
    expect(strictestLevel(requirementsOf(license))).toBe('disallow');
  });

  it('separates hdcp_version from hdcp_type1', () => {
    const r = requirementsOf({
      policy: { outputProtection: { hdcpVersion: '1.4', hdcpType1: true } },
    });
    const rows = explainLicense(
      r,
      state(conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type0' })),
    );
    expect(rows.find((x) => x.requirement === 'hdcp_version')).toMatchObject({
      set: true,
      action: 'allow-protected',
    });
    expect(rows.find((x) => x.requirement === 'hdcp_type1')).toMatchObject({
      set: true,
      value: 'true',
      action: 'pending',
    });
  });

  it('describes a decision with its code, requests, cap, outputs and notes', () => {
    const hdmi = conn('HDMI-A', { name: 'HDMI-A-1' });
    const pend = describeDecision(decideOutput(requirementsOf(license), state(hdmi), 'video'));
    expect(pend).toMatch(/^video: pending/);
    expect(pend).toContain('engage: HDCP type 1 on HDMI-A-1');
    expect(pend).toContain('max resolution: 1280x720');
    expect(pend).toMatch(/HDMI-A-1 \[digital, hdcp\] restricted: pending/);
    expect(pend).toMatch(/note: HDCP 2\.2/);
    const comp = conn('Composite', { name: 'Composite-1' });
    expect(describeDecision(decideOutput(requirementsOf(license), state(comp), 'video'))).toContain(
      'engage: CGMS-A copy-once on Composite-1',
    );
    const block = describeDecision(
      decideOutput(requirementsOf(license), state(conn('VGA', { name: 'VGA-1' })), 'video'),
    );
    expect(block).toMatch(/^video: block — error 6030 OUTPUT_PROTECTION_UNMET: VGA-1/);
  });
});
