import { describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import {
  decideOutput,
  hdcpRequirementOf,
  NO_REQUIREMENTS,
  requirementsOf,
  toOutputCheck,
  trackOf,
  tracksOf,
} from '../../../src/output/policy/index.js';
import type { OutputDecision, OutputState } from '../../../src/output/types.js';
import { keywarden } from '../../../src/protocol/generated/proto.js';
import { conn, notMaster, req, state } from './policy-helpers.js';

const R300 = { uncompressedDigitalVideoOpl: 300 };
const BE150 = { uncompressedDigitalVideoOpl: 150 };

function code(d: OutputDecision): number | undefined {
  return d.error?.number;
}

describe('mixed outputs: every active output conforms, the least protective decides', () => {
  it('HDMI with HDCP plus composite without CGMS-A: best effort plays, restricted blocks', () => {
    const hdmi = conn('HDMI-A', { contentProtection: 'enabled' });
    const comp = conn('Composite', { cgmsA: false });
    const be = decideOutput(req({ ...R300, analogVideoOpl: 150 }), state(hdmi, comp), 'video');
    expect(be.action).toBe('allow-protected');
    expect(be.outputs.map((o) => [o.name, o.verdict])).toEqual([
      [hdmi.name, 'protected'],
      [comp.name, 'best-effort'],
    ]);
    expect(be.notes.some((n) => n.startsWith(comp.name) && /CGMS-A/.test(n))).toBe(true);

    const r = decideOutput(req({ ...R300, analogVideoOpl: 200 }), state(hdmi, comp), 'video');
    expect(r.action).toBe('block');
    expect(r.error?.code).toBe('OUTPUT_CANNOT_ENGAGE');
    expect(r.error?.message).toContain(comp.name);
    expect(r.engage).toEqual([]);
  });

  it('HDMI enabled plus VGA: the digital table does not govern VGA, the analog one does', () => {
    const hdmi = conn('HDMI-A', { contentProtection: 'enabled' });
    const vga = conn('VGA');
    expect(decideOutput(req(R300), state(hdmi, vga), 'video').action).toBe('allow-protected');
    const be = decideOutput(req({ ...R300, analogVideoOpl: 150 }), state(hdmi, vga), 'video');
    expect(be.action).toBe('allow-protected');
    expect(be.notes.join('\n')).toMatch(/VGA.*nothing to try/);
    const r = decideOutput(req({ ...R300, analogVideoOpl: 200 }), state(hdmi, vga), 'video');
    expect(r.action).toBe('block');
    expect(code(r)).toBe(6030);
    expect(r.error?.message).toContain(vga.name);
    expect(r.outputs.find((o) => o.name === vga.name)?.verdict).toBe('blocked');
    expect(r.outputs.find((o) => o.name === hdmi.name)?.verdict).toBe('protected');
  });

  it('an internal panel is exempt; only the HDMI output is engaged', () => {
    const edp = conn('eDP');
    const hdmi = conn('HDMI-A');
    const d = decideOutput(req({ ...R300, analogVideoOpl: 500 }), state(edp, hdmi), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([
      { connectorId: hdmi.id, connector: hdmi.name, mechanism: 'hdcp', contentType: 0 },
    ]);
    expect(d.outputs.find((o) => o.name === edp.name)?.verdict).toBe('exempt');
    expect(d.outputs.find((o) => o.name === edp.name)?.class).toBe('internal');
  });

  it('ignores inactive and disconnected outputs, but counts an active one of unknown connection', () => {
    const hdmi = conn('HDMI-A', { contentProtection: 'enabled' });
    const op = { ...R300, analogVideoOpl: 201 };
    const idle = conn('VGA', { active: false, crtcId: 0, mode: null });
    const unplugged = conn('VGA', { connection: 'disconnected' });
    const d = decideOutput(req(op), state(hdmi, idle, unplugged), 'video');
    expect(d.action).toBe('allow-protected');
    expect(d.outputs.map((o) => o.name)).toEqual([hdmi.name]);
    expect(d.notes.join('\n')).toContain(idle.name);

    const tv = conn('VGA', { connection: 'unknown' });
    const blocked = decideOutput(req(op), state(hdmi, tv), 'video');
    expect(blocked.action).toBe('block');
    expect(code(blocked)).toBe(6030);
  });

  it('one failed HDMI among enabled ones blocks, naming it', () => {
    const a = conn('HDMI-A', { contentProtection: 'enabled' });
    const b = conn('HDMI-A', {
      contentProtection: 'desired',
      attempt: { mechanism: 'hdcp', state: 'failed', reason: 'auth timeout' },
    });
    const d = decideOutput(req(R300), state(a, b), 'video');
    expect(d.action).toBe('block');
    expect(d.error?.code).toBe('OUTPUT_RENEGOTIATION_FAILED');
    expect(d.error?.message).toContain(b.name);
    expect(d.error?.message).toContain('auth timeout');
    expect(d.error?.message).not.toContain(a.name);
  });

  it('reports the most specific code when several outputs block, and lists them all', () => {
    const vga = conn('VGA');
    const hdmi = conn('HDMI-A', { sink: 'revoked' });
    const d = decideOutput(req({ ...R300, analogVideoOpl: 200 }), state(vga, hdmi), 'video');
    expect(d.error?.code).toBe('OUTPUT_SINK_REVOKED');
    const outs = d.error?.details['outputs'] as { name: string; code: string }[];
    expect(outs.map((o) => [o.name, o.code])).toEqual([
      [vga.name, 'OUTPUT_PROTECTION_UNMET'],
      [hdmi.name, 'OUTPUT_SINK_REVOKED'],
    ]);
    expect(d.error?.message).toContain(`also blocking: ${vga.name}`);
  });

  it('a block wins over a pending output and requests nothing', () => {
    const d = decideOutput(
      req({ ...R300, analogVideoOpl: 200 }),
      state(conn('HDMI-A'), conn('DVI-A')),
      'video',
    );
    expect(d.action).toBe('block');
    expect(d.engage).toEqual([]);
  });

  it('pending on one output, protected on another: pending with only the missing request', () => {
    const a = conn('DP', { contentProtection: 'enabled' });
    const b = conn('HDMI-B');
    const d = decideOutput(req(R300), state(a, b), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage.map((e) => e.connectorId)).toEqual([b.id]);
  });

  it('with no active output at all, allows and says so', () => {
    const d = decideOutput(
      req({ ...R300, analogVideoOpl: 500 }),
      state(conn('HDMI-A', { active: false })),
      'video',
    );
    expect(d.action).toBe('allow');
    expect(d.outputs).toEqual([]);
    expect(d.notes).toContain('no active output');
  });
});

describe('best effort', () => {
  it('is pending until HDCP is tried, then plays whether or not it came up', () => {
    const fresh = conn('HDMI-A');
    const d0 = decideOutput(req(BE150), state(fresh), 'video');
    expect(d0.action).toBe('pending');
    expect(d0.engage).toEqual([
      { connectorId: fresh.id, connector: fresh.name, mechanism: 'hdcp', contentType: 0 },
    ]);

    const requested = { ...fresh, contentProtection: 'desired' as const };
    const d1 = decideOutput(
      req(BE150),
      state({ ...requested, attempt: { mechanism: 'hdcp', state: 'requested' } }),
      'video',
    );
    expect(d1.action).toBe('allow');
    expect(d1.engage).toEqual([]);

    const d2 = decideOutput(
      req(BE150),
      state({ ...requested, attempt: { mechanism: 'hdcp', state: 'failed', reason: 'no ack' } }),
      'video',
    );
    expect(d2.action).toBe('allow');
    expect(d2.notes.join('\n')).toMatch(/tried and failed \(no ack\)/);

    const d3 = decideOutput(req(BE150), state({ ...fresh, contentProtection: 'enabled' }), 'video');
    expect(d3.action).toBe('allow-protected');
  });

  it('waits until every output has been tried', () => {
    const tried = conn('HDMI-A', {
      contentProtection: 'desired',
      attempt: { mechanism: 'hdcp', state: 'failed' },
    });
    const untried = conn('DP');
    const d = decideOutput(req(BE150), state(tried, untried), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage.map((e) => e.connectorId)).toEqual([untried.id]);
  });

  it('plays at once when there is nothing to try', () => {
    for (const c of [
      conn('HDMI-A', { contentProtection: 'unsupported' }),
      conn('HDMI-A', { contentProtection: 'desired' }),
    ]) {
      const d = decideOutput(req(BE150), state(c), 'video');
      expect(d.action, c.contentProtection).toBe('allow');
    }
    const d = decideOutput(req(BE150), notMaster(conn('HDMI-A')), 'video');
    expect(d.action).toBe('allow');
    expect(d.notes.join('\n')).toMatch(/not DRM master/);
  });

  it('does not block on a revoked sink (it only matters where HDCP is required)', () => {
    const d = decideOutput(req(BE150), state(conn('HDMI-A', { sink: 'revoked' })), 'video');
    expect(d.action).toBe('pending');
  });

  it('CGMS-A: pending until asserted or tried; nothing to try without the property', () => {
    const c = conn('Component');
    const d = decideOutput(req({ analogVideoOpl: 150 }), state(c), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([
      { connectorId: c.id, connector: c.name, mechanism: 'cgms-a', value: 'copy-never' },
    ]);
    expect(decideOutput(req({ analogVideoOpl: 150 }), notMaster(c), 'video').action).toBe('allow');
    expect(
      decideOutput(req({ analogVideoOpl: 150 }), state({ ...c, cgmsA: false }), 'video').action,
    ).toBe('allow');
  });
});

describe('restricted', () => {
  it('waits while HDCP is requested, then allows once enabled', () => {
    const c = conn('HDMI-A', {
      contentProtection: 'desired',
      attempt: { mechanism: 'hdcp', state: 'requested' },
    });
    const d = decideOutput(req(R300), state(c), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([]);
    expect(d.outputs[0]?.verdict).toBe('pending');
    expect(
      decideOutput(req(R300), state({ ...c, contentProtection: 'enabled' }), 'video').action,
    ).toBe('allow-protected');
  });

  it('a failed request blocks with 6032, or with the code the monitor recorded', () => {
    const failed = conn('HDMI-A', {
      contentProtection: 'desired',
      attempt: { mechanism: 'hdcp', state: 'failed' },
    });
    expect(code(decideOutput(req(R300), state(failed), 'video'))).toBe(6032);
    const refused = {
      ...failed,
      attempt: { mechanism: 'hdcp', state: 'failed', code: 'OUTPUT_CANNOT_ENGAGE' } as const,
    };
    expect(code(decideOutput(req(R300), state(refused), 'video'))).toBe(6037);
  });

  it('a connector whose driver has no HDCP property blocks with 6037', () => {
    const d = decideOutput(
      req(R300),
      state(conn('HDMI-A', { contentProtection: 'unsupported' })),
      'video',
    );
    expect(d.action).toBe('block');
    expect(d.error?.code).toBe('OUTPUT_CANNOT_ENGAGE');
    expect(d.error?.message).toMatch(/no HDCP/);
  });

  it('without DRM master HDCP cannot be requested (6037), unless it is already enabled', () => {
    expect(code(decideOutput(req(R300), notMaster(conn('HDMI-A')), 'video'))).toBe(6037);
    expect(
      decideOutput(req(R300), notMaster(conn('HDMI-A', { contentProtection: 'enabled' })), 'video')
        .action,
    ).toBe('allow-protected');
    // Desired set by an earlier agent run: wait for it rather than block.
    expect(
      decideOutput(req(R300), notMaster(conn('HDMI-A', { contentProtection: 'desired' })), 'video')
        .action,
    ).toBe('pending');
  });

  it('a revoked or tampered sink blocks with 6033 / 6034, even if the driver says enabled', () => {
    for (const [sink, n] of [
      ['revoked', 6033],
      ['tampered', 6034],
    ] as const) {
      for (const cp of ['undesired', 'enabled'] as const) {
        const d = decideOutput(
          req(R300),
          state(conn('HDMI-A', { sink, contentProtection: cp })),
          'video',
        );
        expect(code(d), `${sink} ${cp}`).toBe(n);
      }
    }
    expect(
      decideOutput(
        req(R300),
        state(conn('HDMI-A', { sink: 'ok', contentProtection: 'enabled' })),
        'video',
      ).action,
    ).toBe('allow-protected');
  });

  it('CGMS-A: a failed assertion, a missing property or no master block with 6037', () => {
    const op = { analogVideoOpl: 200 };
    const failed = conn('Composite', { attempt: { mechanism: 'cgms-a', state: 'failed' } });
    expect(code(decideOutput(req(op), state(failed), 'video'))).toBe(6037);
    expect(code(decideOutput(req(op), state(conn('Composite', { cgmsA: false })), 'video'))).toBe(
      6037,
    );
    expect(code(decideOutput(req(op), notMaster(conn('Composite')), 'video'))).toBe(6037);
  });
});

describe('explicit requirements', () => {
  it('HDCP 1.4: Enabled with any content type, requested as type 0', () => {
    const r = req({ hdcpVersion: '1.4' });
    expect(r.hdcp?.proof).toBe('enabled');
    const c = conn('HDMI-A');
    const d = decideOutput(r, state(c), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([
      { connectorId: c.id, connector: c.name, mechanism: 'hdcp', contentType: 0 },
    ]);
    expect(
      decideOutput(
        r,
        state({ ...c, contentProtection: 'enabled', hdcpContentType: 'type0' }),
        'video',
      ).action,
    ).toBe('allow-protected');
    // Without DRM master it cannot be requested: the explicit version made it Restricted.
    expect(code(decideOutput(r, notMaster(c), 'video'))).toBe(6037);
    // It governs digital outputs only; a capture path cannot give it.
    expect(decideOutput(r, state(conn('VGA')), 'video').action).toBe('allow');
    expect(code(decideOutput(r, state(conn('Writeback')), 'video'))).toBe(6030);
    expect(code(decideOutput(r, state(conn('USB')), 'video'))).toBe(6030);
  });

  it('HDCP 2.2: content type 1 is requested and required', () => {
    const r = req({ hdcpVersion: '2.2' });
    expect(r.hdcp?.proof).toBe('type1');
    const type0 = conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type0' });
    const d = decideOutput(r, state(type0), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([
      { connectorId: type0.id, connector: type0.name, mechanism: 'hdcp', contentType: 1 },
    ]);
    expect(decideOutput(r, state({ ...type0, hdcpContentType: 'type1' }), 'video').action).toBe(
      'allow-protected',
    );
    // A type 1 request in flight: wait without asking again.
    const inFlight = {
      ...type0,
      attempt: { mechanism: 'hdcp', state: 'requested', contentType: 1 } as const,
    };
    const w = decideOutput(r, state(inFlight), 'video');
    expect(w.action).toBe('pending');
    expect(w.engage).toEqual([]);
    // An earlier type 0 request does not count.
    const old = {
      ...type0,
      attempt: { mechanism: 'hdcp', state: 'failed', contentType: 0 } as const,
    };
    expect(decideOutput(r, state(old), 'video').engage).toHaveLength(1);
    // A failed type 1 request blocks.
    const failed = {
      ...type0,
      attempt: { mechanism: 'hdcp', state: 'failed', contentType: 1 } as const,
    };
    expect(code(decideOutput(r, state(failed), 'video'))).toBe(6032);
    // No "HDCP Content Type" property: type 1 cannot be requested.
    expect(
      code(decideOutput(r, state({ ...type0, hdcpContentType: 'unsupported' }), 'video')),
    ).toBe(6037);
  });

  it('hdcp_type1 alone, or with version 1.4, is type 1', () => {
    for (const op of [{ hdcpType1: true }, { hdcpType1: true, hdcpVersion: '1.4' }]) {
      const r = req(op);
      expect(r.hdcp?.proof).toBe('type1');
      const d = decideOutput(r, state(conn('HDMI-A')), 'video');
      expect(d.engage[0]).toMatchObject({ mechanism: 'hdcp', contentType: 1 });
    }
  });

  it('HDCP 2.3 is accepted as 2.2-class, and says so', () => {
    const r = req({ hdcpVersion: '2.3' });
    expect(r.hdcp?.proof).toBe('type1');
    const d = decideOutput(
      r,
      state(conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type1' })),
      'video',
    );
    expect(d.action).toBe('allow-protected');
    expect(d.notes.join('\n')).toMatch(/2\.3.*2\.2/);
  });

  it.each([
    ['1.0', 'enabled'],
    ['1.3', 'enabled'],
    ['1', 'enabled'],
    ['2', 'type1'],
    ['2.0', 'type1'],
    ['2.1', 'type1'],
    [' 2.2 ', 'type1'],
    ['2.4', 'unprovable'],
    ['3.0', 'unprovable'],
    ['abc', 'unprovable'],
    ['2.2a', 'unprovable'],
  ])('HDCP version %j needs %s', (v, proof) => {
    expect(hdcpRequirementOf(v, false)?.proof).toBe(proof);
  });

  it('an unprovable HDCP version blocks digital outputs with 6030', () => {
    for (const v of ['3.0', 'garbage']) {
      const d = decideOutput(
        req({ hdcpVersion: v }),
        state(conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type1' })),
        'video',
      );
      expect(code(d), v).toBe(6030);
    }
    expect(hdcpRequirementOf('', false)).toBeUndefined();
    expect(hdcpRequirementOf(undefined, undefined)).toBeUndefined();
  });

  it('an explicit HDCP version does not lift a Disallow, nor govern audio keys', () => {
    const on = conn('HDMI-A', { contentProtection: 'enabled', hdcpContentType: 'type1' });
    expect(
      code(
        decideOutput(
          req({ hdcpVersion: '2.2', uncompressedDigitalVideoOpl: 301 }),
          state(on),
          'video',
        ),
      ),
    ).toBe(6030);
    expect(decideOutput(req({ hdcpVersion: '2.2' }), state(conn('HDMI-A')), 'audio').action).toBe(
      'allow',
    );
  });

  it('CGMS-A: the named value is asserted and required on analog outputs', () => {
    const r = req({ cgmsA: keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_ONCE });
    expect(r.cgmsA).toBe('copy-once');
    const c = conn('SVIDEO');
    const d = decideOutput(r, state(c), 'video');
    expect(d.action).toBe('pending');
    expect(d.engage).toEqual([
      { connectorId: c.id, connector: c.name, mechanism: 'cgms-a', value: 'copy-once' },
    ]);
    const asserted = {
      ...c,
      attempt: { mechanism: 'cgms-a', state: 'requested', cgmsA: 'copy-once' } as const,
    };
    expect(decideOutput(r, state(asserted), 'video').action).toBe('allow-protected');
    // Another value asserted earlier: assert the right one.
    const other = {
      ...c,
      attempt: { mechanism: 'cgms-a', state: 'requested', cgmsA: 'copy-free' } as const,
    };
    expect(decideOutput(r, state(other), 'video').engage).toHaveLength(1);
    // An analog output without CGMS-A cannot give it; digital outputs are not concerned.
    expect(code(decideOutput(r, state(conn('VGA')), 'video'))).toBe(6030);
    expect(decideOutput(r, state(conn('HDMI-A')), 'video').action).toBe('allow');
  });

  it('CGMS-A values: unset, the three values, and an unknown one read as copy-never', () => {
    expect(req({ cgmsA: 0 }).cgmsA).toBeUndefined();
    expect(req({ cgmsA: 1 }).cgmsA).toBe('copy-free');
    expect(req({ cgmsA: 3 }).cgmsA).toBe('copy-never');
    expect(req({ cgmsA: 7 as keywarden.v1.OutputProtection.CgmsA }).cgmsA).toBe('copy-never');
  });

  it('disable_analog_output blocks any active analog output, for video keys', () => {
    const r = req({ disableAnalogOutput: true });
    for (const t of [
      'Composite',
      'SVIDEO',
      'Component',
      'VGA',
      'DVI-A',
      'TV',
      '9PinDIN',
    ] as const) {
      const d = decideOutput(r, state(conn(t)), 'video');
      expect(code(d), t).toBe(6030);
      expect(decideOutput(r, state(conn(t, { active: false })), 'video').action, t).toBe('allow');
      expect(decideOutput(r, state(conn(t)), 'audio').action, t).toBe('allow');
    }
    // Asserted CGMS-A does not help.
    expect(
      code(
        decideOutput(
          r,
          state(conn('Composite', { attempt: { mechanism: 'cgms-a', state: 'requested' } })),
          'video',
        ),
      ),
    ).toBe(6030);
    // DVI-I: blocked unless HDCP proves the digital side drives it.
    expect(code(decideOutput(r, state(conn('DVI-I')), 'video'))).toBe(6030);
    expect(
      decideOutput(r, state(conn('DVI-I', { contentProtection: 'enabled' })), 'video').action,
    ).toBe('allow');
    expect(decideOutput(r, state(conn('HDMI-A')), 'video').action).toBe('allow');
  });

  describe('maximum resolution', () => {
    const cap = req({}, { maxWidth: 1280, maxHeight: 720 });
    const mode = (width: number, height: number) => ({ width, height, refresh: 60 });

    it('downscales when an active mode exceeds the cap', () => {
      const d = decideOutput(cap, state(conn('HDMI-A')), 'video');
      expect(d.action).toBe('downscale');
      expect(d.maxResolution).toEqual({ width: 1280, height: 720 });
      const fits = decideOutput(cap, state(conn('HDMI-A', { mode: mode(1280, 720) })), 'video');
      expect(fits.action).toBe('allow');
      // The cap is reported anyway, for the player's rendition choice.
      expect(fits.maxResolution).toEqual({ width: 1280, height: 720 });
      expect(
        decideOutput(cap, state(conn('HDMI-A', { mode: mode(1280, 1024) })), 'video').action,
      ).toBe('downscale');
      expect(decideOutput(cap, state(conn('HDMI-A', { mode: null })), 'video').action).toBe(
        'downscale',
      );
    });

    it('uses the content size when known', () => {
      const small = conn('HDMI-A', { mode: mode(1280, 720) });
      expect(
        decideOutput(cap, state(small), 'video', { content: { width: 1920, height: 1080 } }).action,
      ).toBe('downscale');
      expect(
        decideOutput(cap, state(conn('HDMI-A')), 'video', { content: { width: 1280, height: 720 } })
          .action,
      ).toBe('allow');
    });

    it('caps one dimension only when the other is 0', () => {
      const h = req({}, { maxHeight: 720 });
      expect(h.maxResolution).toEqual({ height: 720 });
      const d = decideOutput(h, state(conn('HDMI-A', { mode: mode(3840, 720) })), 'video');
      expect(d.action).toBe('allow');
      expect(req({}, { maxWidth: 0, maxHeight: 0 }).maxResolution).toBeUndefined();
    });

    it('does not concern audio keys, yields to block and pending, combines with protection', () => {
      expect(decideOutput(cap, state(conn('HDMI-A')), 'audio')).toMatchObject({ action: 'allow' });
      expect(decideOutput(cap, state(conn('HDMI-A')), 'audio').maxResolution).toBeUndefined();
      const strict = req(R300, { maxWidth: 1280, maxHeight: 720 });
      const pending = decideOutput(strict, state(conn('HDMI-A')), 'video');
      expect(pending.action).toBe('pending');
      const blocked = decideOutput(strict, state(conn('HDMI-A', { sink: 'revoked' })), 'video');
      expect(blocked.action).toBe('block');
      expect(blocked.maxResolution).toBeUndefined();
      const on = decideOutput(
        strict,
        state(conn('HDMI-A', { contentProtection: 'enabled' })),
        'video',
      );
      expect(on.action).toBe('downscale');
      expect(on.outputs[0]?.verdict).toBe('protected');
    });
  });
});

describe('unknown output state', () => {
  const unknown: OutputState = { known: false, reason: 'no /dev/dri/card*' };

  it('allows a license that asks at most best effort, and notes why', () => {
    expect(decideOutput(NO_REQUIREMENTS, unknown, 'video').action).toBe('allow');
    const d = decideOutput(
      req({ analogVideoOpl: 150, uncompressedDigitalVideoOpl: 250 }),
      unknown,
      'video',
    );
    expect(d.action).toBe('allow');
    expect(d.notes.join('\n')).toContain('no /dev/dri/card*');
  });

  it.each([
    ['restricted digital', { uncompressedDigitalVideoOpl: 300 }],
    ['restricted analog', { analogVideoOpl: 200 }],
    ['disallowed analog', { analogVideoOpl: 201 }],
    ['explicit HDCP', { hdcpVersion: '1.4' }],
    ['explicit CGMS-A', { cgmsA: 3 }],
    ['analog off', { disableAnalogOutput: true }],
  ])('blocks %s with 6036', (_, op) => {
    const d = decideOutput(req(op), unknown, 'video');
    expect(d.action).toBe('block');
    expect(d.error?.code).toBe('OUTPUT_STATUS_UNKNOWN');
    expect(d.error?.message).toContain('no /dev/dri/card*');
  });

  it('decides audio and video keys separately', () => {
    const r = req({ uncompressedDigitalAudioOpl: 150 });
    expect(code(decideOutput(r, unknown, 'audio'))).toBe(6036);
    expect(code(decideOutput(r, unknown, 'unknown'))).toBe(6036);
    expect(decideOutput(r, unknown, 'video').action).toBe('allow');
  });

  it('downscales when the cap is set and no content size is known', () => {
    const r = req({}, { maxWidth: 1280 });
    expect(decideOutput(r, unknown, 'video').action).toBe('downscale');
    expect(
      decideOutput(r, unknown, 'video', { content: { width: 1280, height: 720 } }).action,
    ).toBe('allow');
  });
});

describe('requirementsOf, tracks and the policy-engine verdict', () => {
  it('reads a license without a policy as no requirement', () => {
    const r = requirementsOf({});
    expect(r).toEqual(NO_REQUIREMENTS);
    expect(r).toMatchObject({
      analogVideo: 'unrestricted',
      digitalVideo: 'unrestricted',
      digitalAudio: 'unrestricted',
      disableAnalogOutput: false,
      hdcpType1: false,
    });
    expect(r.hdcp).toBeUndefined();
    expect(r.maxResolution).toBeUndefined();
  });

  it('reads a decoded protobuf license', () => {
    const bytes = keywarden.v1.License.encode({
      id: 'l1',
      policy: {
        canPlay: true,
        outputProtection: {
          analogVideoOpl: 150,
          uncompressedDigitalVideoOpl: 300,
          hdcpVersion: '2.2',
          cgmsA: keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_NEVER,
        },
        maxWidth: 1920,
        maxHeight: 1080,
      },
    }).finish();
    const r = requirementsOf(keywarden.v1.License.decode(bytes));
    expect(r).toMatchObject({
      analogVideo: 'best-effort',
      digitalVideo: 'restricted',
      cgmsA: 'copy-never',
      maxResolution: { width: 1920, height: 1080 },
      hdcp: { version: '2.2', proof: 'type1' },
    });
    expect(r.opl.analogVideo).toBe(150);
  });

  it('maps key track types', () => {
    const T = keywarden.v1.KeyContainer.TrackType;
    expect(trackOf(T.AUDIO)).toBe('audio');
    expect([T.VIDEO_SD, T.VIDEO_HD, T.VIDEO_UHD].map(trackOf)).toEqual(['video', 'video', 'video']);
    expect(trackOf(T.TRACK_TYPE_UNSPECIFIED)).toBe('unknown');
    expect(trackOf(99)).toBe('unknown');
    expect(trackOf(undefined)).toBe('unknown');
    expect(
      tracksOf({
        keys: [{ trackType: T.AUDIO }, { trackType: T.VIDEO_HD }, { trackType: T.VIDEO_SD }],
      }),
    ).toEqual(['video', 'audio']);
    expect(tracksOf({})).toEqual(['unknown']);
  });

  it('turns decisions into the policy engine verdict, the worst one deciding', () => {
    const r = req(R300);
    const allowed = decideOutput(
      r,
      state(conn('HDMI-A', { contentProtection: 'enabled' })),
      'video',
    );
    const pending = decideOutput(r, state(conn('HDMI-A')), 'video');
    const blocked = decideOutput(r, state(conn('VGA', { type: 'Writeback' })), 'video');
    expect(toOutputCheck(allowed)).toEqual({ verdict: 'allowed' });
    expect(toOutputCheck(allowed, pending)).toEqual({ verdict: 'unknown' });
    const c = toOutputCheck(pending, blocked, allowed);
    expect(c.verdict).toBe('restricted');
    expect(isKeywardenError(c.error, 'OUTPUT_PROTECTION_UNMET')).toBe(true);
    expect(toOutputCheck()).toEqual({ verdict: 'allowed' });
    const down = decideOutput(req({}, { maxWidth: 640 }), state(conn('HDMI-A')), 'video');
    expect(down.action).toBe('downscale');
    expect(toOutputCheck(down)).toEqual({ verdict: 'allowed' });
  });
});
