/**
 * The output monitor over a fake device (a unit: the scripted native backend is exercised in
 * test/integration/agent-output.test.ts). Engagement, the HDCP timeout (6032), transitions
 * (6031, 6035, 6033), release on close, and the unknown state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  KmsDevice,
  KmsProtectionResult,
  NativeKmsConnector,
  NativeKmsSnapshot,
  NativeUevent,
} from '../../../src/native/binding.js';
import { OutputMonitor } from '../../../src/output/monitor.js';
import type { keywarden } from '../../../src/protocol/generated/proto.js';

/** A KMS device whose state the test edits, with a uevent it can fire. */
class FakeDevice implements KmsDevice {
  closed = false;
  master = true;
  connectors: NativeKmsConnector[];
  requests: { id: number; type: number }[] = [];
  releases: number[] = [];
  private listener: ((e: NativeUevent) => void) | undefined;
  constructor(connectors: NativeKmsConnector[]) {
    this.connectors = connectors;
  }
  snapshot(): NativeKmsSnapshot {
    return {
      backend: 'scripted',
      available: true,
      device: 'scripted:fake',
      master: this.master,
      connectors: this.connectors.map((c) => ({ ...c })),
    };
  }
  requestProtection(id: number, contentType: 0 | 1): KmsProtectionResult {
    this.requests.push({ id, type: contentType });
    if (!this.master)
      return { ok: false, reason: 'not DRM master', contentProtection: 'undesired' };
    this.set(id, { contentProtection: 'desired' });
    return { ok: true, contentProtection: 'desired' };
  }
  releaseProtection(id: number): KmsProtectionResult {
    this.releases.push(id);
    return { ok: true, contentProtection: 'undesired' };
  }
  watch(onEvent: (e: NativeUevent) => void): void {
    this.listener = onEvent;
  }
  unref(): void {}
  ref(): void {}
  close(): void {
    this.closed = true;
  }
  set(id: number, patch: Partial<NativeKmsConnector>): void {
    this.connectors = this.connectors.map((c) => (c.id === id ? { ...c, ...patch } : c));
  }
  fire(): void {
    this.listener?.({
      action: 'change',
      devpath: '/devices/fake',
      subsystem: 'drm',
      hotplug: true,
    });
  }
}

const hdmi = (id: number, over: Partial<NativeKmsConnector> = {}): NativeKmsConnector => ({
  id,
  name: `HDMI-A-${id}`,
  type: 'HDMI-A',
  typeIndex: id,
  connection: 'connected',
  active: true,
  crtcId: 60 + id,
  mode: { width: 1920, height: 1080, refresh: 60 },
  contentProtection: 'undesired',
  hdcpContentType: 'type0',
  sink: 'ok',
  cgmsA: false,
  ...over,
});

const restricted: keywarden.v1.ILicense = {
  policy: { outputProtection: { uncompressedDigitalVideoOpl: 300 } },
  keys: [],
};

const monitors: OutputMonitor[] = [];
function open(device: FakeDevice, hdcpTimeoutMs = 100): OutputMonitor {
  const m = OutputMonitor.open({
    backend: 'scripted',
    scenario: { name: 'fake' } as never,
    openDevice: () => device,
    hdcpTimeoutMs,
    pollMs: 0,
  });
  m.watch();
  monitors.push(m);
  return m;
}
afterEach(() => {
  for (const m of monitors.splice(0)) m.close();
});

describe('OutputMonitor', () => {
  it('requests HDCP for a pending license once, and allows it when the link is Enabled', () => {
    const dev = new FakeDevice([hdmi(1)]);
    const m = open(dev);
    const first = m.check(restricted);
    expect(first.verdict).toBe('unknown');
    m.check(restricted);
    expect(dev.requests).toEqual([{ id: 1, type: 0 }]); // not asked twice
    dev.set(1, { contentProtection: 'enabled' });
    dev.fire();
    expect(m.check(restricted)).toEqual({ verdict: 'allowed' });
  });

  it('marks HDCP that does not come up in time as failed (6032)', async () => {
    const dev = new FakeDevice([hdmi(1)]);
    const m = open(dev, 50);
    const incidents: string[] = [];
    m.on('incident', (i) => incidents.push(i.error.code));
    m.check(restricted);
    await new Promise((r) => setTimeout(r, 120));
    const v = m.check(restricted);
    expect(v.verdict).toBe('restricted');
    expect(v.error?.code).toBe('OUTPUT_RENEGOTIATION_FAILED');
    expect(incidents).toEqual(['OUTPUT_RENEGOTIATION_FAILED']);
  });

  it('reports a lost link (6031) until it is Enabled again', () => {
    const dev = new FakeDevice([hdmi(1, { contentProtection: 'enabled' })]);
    const m = open(dev);
    expect(m.check(restricted).verdict).toBe('allowed');
    dev.set(1, { contentProtection: 'desired' });
    dev.fire();
    expect(m.check(restricted).error?.code).toBe('OUTPUT_LINK_LOST');
    dev.set(1, { contentProtection: 'enabled' });
    dev.fire();
    expect(m.check(restricted).verdict).toBe('allowed');
  });

  it('reports a new output (6035) while it falls short, and not once it is protected', () => {
    const dev = new FakeDevice([
      hdmi(1, { contentProtection: 'enabled' }),
      hdmi(2, { active: false, connection: 'disconnected', crtcId: 0, mode: null }),
    ]);
    const m = open(dev);
    expect(m.check(restricted).verdict).toBe('allowed');
    dev.set(2, { active: true, connection: 'connected', crtcId: 62 });
    dev.fire();
    expect(m.check(restricted).error?.code).toBe('OUTPUT_CONNECTOR_ADDED');
    expect(dev.requests.map((r) => r.id)).toContain(2); // protection requested on it
    dev.set(2, { contentProtection: 'enabled' });
    dev.fire();
    expect(m.check(restricted).verdict).toBe('allowed');
  });

  it('follows a sink turning revoked (6033)', () => {
    const dev = new FakeDevice([hdmi(1, { contentProtection: 'enabled' })]);
    const m = open(dev);
    dev.set(1, { sink: 'revoked' });
    dev.fire();
    expect(m.check(restricted).error?.code).toBe('OUTPUT_SINK_REVOKED');
  });

  it('records a refused request (no DRM master) as 6037', () => {
    const dev = new FakeDevice([hdmi(1)]);
    dev.master = false;
    const m = open(dev);
    expect(m.check(restricted).error?.code).toBe('OUTPUT_CANNOT_ENGAGE');
  });

  it('releases what it engaged when closed', () => {
    const dev = new FakeDevice([hdmi(1), hdmi(2, { contentProtection: 'enabled' })]);
    const m = open(dev);
    m.check(restricted);
    m.close();
    expect(dev.releases).toEqual([1]);
    expect(dev.closed).toBe(true);
  });

  it('gives DRM master back unless told to keep it', () => {
    const seen: unknown[] = [];
    for (const drmMaster of [undefined, 'keep', 'drop'] as const) {
      const m = OutputMonitor.open({
        backend: 'libdrm',
        device: '/dev/dri/card7',
        ...(drmMaster && { drmMaster }),
        openDevice: (o) => {
          seen.push(o);
          return new FakeDevice([hdmi(1)]);
        },
        pollMs: 0,
      });
      monitors.push(m);
    }
    expect(seen).toEqual([
      { backend: 'libdrm', path: '/dev/dri/card7', dropMaster: true },
      { backend: 'libdrm', path: '/dev/dri/card7', dropMaster: false },
      { backend: 'libdrm', path: '/dev/dri/card7', dropMaster: true },
    ]);
  });

  it('answers unknown (6036 for restricted) when there is nothing to read', () => {
    const m = OutputMonitor.open({ backend: 'none' });
    monitors.push(m);
    expect(m.state.known).toBe(false);
    expect(m.check(restricted).error?.code).toBe('OUTPUT_STATUS_UNKNOWN');
    expect(m.check({ policy: {}, keys: [] }).verdict).toBe('allowed');
    expect(m.clientInfoOutputs()).toEqual([]);
  });
});
